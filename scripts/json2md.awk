# Renders the JSON planexe writes (pretty-printed, two spaces a level, one
# value a line) as Markdown: the keys of the top object become sections
# (### Key, or **Key**: value), arrays become lists, objects within them one
# item each. POSIX awk only, so the reference pipeline builds anywhere.
#
#   awk -f json2md.awk FILE.json...

function unescape(s) {
    gsub(/\\"/, "\"", s)
    gsub(/\\n/, " ", s)
    gsub(/\\t/, " ", s)
    gsub(/\\\//, "/", s)
    gsub(/\\\\/, "\\", s)
    return s
}

function label(k) {
    gsub(/_/, " ", k)
    return toupper(substr(k, 1, 1)) substr(k, 2)
}

# The value after `"key": ` or the bare value of an array line, without its
# quotes and trailing comma.
function value(s) {
    sub(/,$/, "", s)
    if (s ~ /^".*"$/) s = substr(s, 2, length(s) - 2)
    return unescape(s)
}

function indent(depth,   i, out) {
    out = ""
    for (i = 0; i < depth; i++) out = out "  "
    return out
}

{
    line = $0
    match(line, /^ */)
    depth = RLENGTH / 2
    text = substr(line, RLENGTH + 1)
    if (text == "{" || text == "[" || text ~ /^[\]}],?$/) {
        # An object in an array starts a new list item.
        if (text == "{" && depth >= 2) fresh = 1
        next
    }
    if (text ~ /^"[^"]*": /) {
        key = text
        sub(/": .*$/, "", key)
        sub(/^"/, "", key)
        rest = text
        sub(/^"[^"]*": /, "", rest)
        if (depth == 1) {
            if (rest == "[" || rest == "{") printf "\n### %s\n\n", label(key)
            else printf "\n**%s**: %s\n", label(key), value(rest)
            next
        }
        # The first key of an object in a list starts its item; the
        # others are nested under it.
        pad = indent(depth - 3) (fresh ? "- " : "  - ")
        if (rest == "[" || rest == "{") printf "%s**%s**:\n", pad, label(key)
        else printf "%s**%s**: %s\n", pad, label(key), value(rest)
        fresh = 0
        next
    }
    printf "%s- %s\n", indent(depth - 2), value(text)
}
