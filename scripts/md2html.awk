# Turns the Markdown the reference pipeline writes (headings, paragraphs,
# `> ` quotes, nested `- ` lists, pipe tables, **bold**) into one self-contained HTML
# page: no scripts, no fonts or styles fetched from anywhere. Every piece of
# text is escaped, so nothing a model wrote can become markup. POSIX awk.
#
#   awk -v title="..." -f md2html.awk report.md > report.html

function esc(s) {
    gsub(/&/, "\\&amp;", s)
    gsub(/</, "\\&lt;", s)
    gsub(/>/, "\\&gt;", s)
    gsub(/"/, "\\&quot;", s)
    return s
}

# Escapes, then turns **x** into <strong>x</strong>.
function inline(s,   out) {
    s = esc(s)
    out = ""
    while (match(s, /\*\*[^*]+\*\*/)) {
        out = out substr(s, 1, RSTART - 1) "<strong>" substr(s, RSTART + 2, RLENGTH - 4) "</strong>"
        s = substr(s, RSTART + RLENGTH)
    }
    return out s
}

function close_paragraph() {
    if (para != "") { print "<p>" para "</p>"; para = "" }
}

# Closes open list items and lists down to `level` (0 closes them all).
function close_lists(level) {
    while (depth > level) {
        print "</li></ul>"
        depth--
    }
}

function close_table() {
    if (in_table) { print "</table>"; in_table = 0 }
}

function close_quote() {
    if (in_quote) { close_paragraph(); print "</blockquote>"; in_quote = 0 }
}

function close_all() {
    close_paragraph(); close_lists(0); close_table(); close_quote()
}

function cells(line, tag,   n, parts, i, row) {
    sub(/^ *\| */, "", line)
    sub(/ *\| *$/, "", line)
    n = split(line, parts, / *\| */)
    row = "<tr>"
    for (i = 1; i <= n; i++) row = row "<" tag ">" inline(parts[i]) "</" tag ">"
    return row "</tr>"
}

BEGIN {
    print "<!DOCTYPE html>"
    print "<html lang=\"en\"><head><meta charset=\"utf-8\">"
    print "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
    print "<title>" esc(title) "</title>"
    print "<style>"
    print "body{font:16px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}"
    print "h1{font-size:1.8rem}h2{margin-top:2.2rem;border-bottom:1px solid #ddd}h3{font-size:1.05rem}"
    print "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .6rem;text-align:left}"
    print "li{margin:.15rem 0}.note{color:#666;font-size:.9rem}"
    print "blockquote{margin:1rem 0;padding:0 1rem;border-left:3px solid #ddd;color:#444}"
    print "</style></head><body>"
    depth = 0; in_table = 0; in_quote = 0; para = ""
}

# A quote: its lines, `>` and a space taken off, are paragraphs (a `>`
# line alone ends one).
/^>/ {
    if (!in_quote) {
        close_all()
        print "<blockquote>"
        in_quote = 1
    }
    line = $0
    sub(/^> ?/, "", line)
    if (line ~ /^ *$/) close_paragraph()
    else para = para (para == "" ? "" : " ") inline(line)
    next
}

/^#+ / {
    close_all()
    match($0, /^#+/)
    level = RLENGTH > 6 ? 6 : RLENGTH
    print "<h" level ">" inline(substr($0, RLENGTH + 2)) "</h" level ">"
    next
}

/^ *- / {
    close_paragraph(); close_table(); close_quote()
    match($0, /^ */)
    level = int(RLENGTH / 2) + 1
    text = substr($0, RLENGTH + 3)
    if (level > depth + 1) level = depth + 1
    if (level > depth) {
        print "<ul>"
        depth = level
    } else {
        close_lists(level)
        print "</li>"
    }
    printf "<li>%s", inline(text)
    print ""
    next
}

/^ *\|/ {
    close_paragraph(); close_lists(0); close_quote()
    if ($0 ~ /^ *\|[-| :]+\| *$/) next
    if (!in_table) {
        print "<table>"
        in_table = 1
        print cells($0, "th")
    } else {
        print cells($0, "td")
    }
    next
}

/^ *$/ { close_all(); next }

{
    close_lists(0); close_table(); close_quote()
    para = para (para == "" ? "" : " ") inline($0)
}

END {
    close_all()
    print "</body></html>"
}
