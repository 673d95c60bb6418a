#!/usr/bin/env bash
# End-to-end: drives the real kvduel binary in tmux on the default model, as a person would.
# 1 start at 160x45 · 1b a bracketed paste is text · 2 ask · 3 both panes show TTFT · 4 Tab, Shift-Down moves a block, Tab, ask
# again · 5 cached hit rate > 0 and the block order changed on screen · 6 resize · 7 Ctrl-C restores
# the terminal · 8 `generate --chat` streams an answer with its timing line · 9 talks: an unattended
# `--autoplay --loop --record` run through two loops, replayed at another size at ×4 pausing at a
# marker, exported and played by `asciinema cat`, and charted by `report` · 10 CLI limits and --doc
# errors: one line, non-zero status; clamps say so · 11 Cake over a throttled shared tier: a second
# instance shows where computing and loading met. Prints "N passed, N failed" and exits non-zero on any failure.
set -u
cd "$(dirname "$0")/../.."
BIN=${KVDUEL_BIN:-.build/release/kvduel}
S=kvduel-e2e-$$
OUT=$(mktemp -d)
pass=0; fail=0
ok()   { pass=$((pass + 1)); echo "ok   - $1"; }
bad()  { fail=$((fail + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/       /'; }
screen() { tmux capture-pane -p -t "$S"; }
# wait_for REGEX COUNT SECONDS: until the screen shows REGEX at least COUNT times.
wait_for() {
    local i=0
    while [ $i -lt $(($3 * 2)) ]; do
        [ "$(screen | grep -oE "$1" | wc -l)" -ge "$2" ] && return 0
        sleep 0.5; i=$((i + 1))
    done
    return 1
}
finish() {
    tmux kill-session -t "$S" 2>/dev/null
    rm -rf "$OUT"
    echo "$pass passed, $fail failed"
    [ $fail -eq 0 ]
    exit $?
}
command -v tmux >/dev/null || { bad "tmux is installed"; finish; }
[ -x "$BIN" ] || { bad "binary $BIN exists (build it with make build)"; finish; }

export KVDUEL_CACHE_DIR=${KVDUEL_CACHE_DIR:-$HOME/.cache/kvduel}
tmux new-session -d -s "$S" -x 160 -y 45 "bash --norc --noprofile"
tmux send-keys -t "$S" "stty -a > $OUT/stty-before; LANG=C.UTF-8 $BIN chat --max-tokens 12 --no-disk; echo EXIT=\$? > $OUT/exit" Enter

# 1. The duel opens; the model loads.
if wait_for "type a question and press Enter" 1 60; then ok "the duel opens and the model loads"; else bad "the duel opens" "$(screen)"; finish; fi

# 1b. Bracketed paste: a pasted Ctrl-N, Enter and colour escape sequence are text, not keys.
printf 'paste: one\016 two\r\033[31mred\033[0m end' > "$OUT/paste"
tmux load-buffer -b kvduel-e2e-paste "$OUT/paste"
tmux paste-buffer -p -d -b kvduel-e2e-paste -t "$S"
sleep 1
if screen | grep -q "› paste: one two red end" && ! screen | grep -q "new conversation" && ! screen | grep -q "answering"; then
    ok "a bracketed paste with ^N, Enter and ESC[31m lands as text"
else bad "bracketed paste is text" "$(screen | grep -E '›|conversation|answering')"; fi
tmux send-keys -t "$S" C-u
sleep 0.3

# 2-3. Ask; both panes show a final TTFT.
tmux send-keys -t "$S" -l "Who founded Brightwater Analytics?"
tmux send-keys -t "$S" Enter
if wait_for "TTFT [0-9.]+ m?s · reused" 2 600; then ok "both panes show a TTFT after the first question"; else bad "both panes show a TTFT" "$(screen)"; finish; fi
wait_for "turn 1 · 1 in history" 1 60
before=$(screen | grep -E "^│ +[0-9]+ \[[x ]\]" | head -2 | sed -E 's/^│ +[0-9]+ \[.\] ([A-Za-z ]+[a-z]) .*/\1/')

# 4. Tab into the panel, move the first block down with Shift-Down, Tab back, ask again.
tmux send-keys -t "$S" Tab
sleep 0.3
tmux send-keys -t "$S" S-Down
sleep 0.5
after=$(screen | grep -E "^│ +[0-9]+ \[[x ]\]" | head -2 | sed -E 's/^│ +[0-9]+ \[.\] ([A-Za-z ]+[a-z]) .*/\1/')
tmux send-keys -t "$S" Tab
tmux send-keys -t "$S" -l "How many cafés does Orchid Lane Coffee run?"
tmux send-keys -t "$S" Enter
if wait_for "TTFT [0-9.]+ m?s · reused" 4 600; then ok "both panes answer the second question"; else bad "both panes answer the second question" "$(screen)"; finish; fi

# 5. Cached hit rate > 0; the order changed on screen.
hit=$(screen | grep -oE "│TTFT [^│]*hit [0-9]+/[0-9]+" | head -1 | grep -oE "hit [0-9]+" | grep -oE "[0-9]+")
if [ -n "$hit" ] && [ "$hit" -gt 0 ]; then ok "the cached pane shows a non-zero hit rate ($hit tokens)"; else bad "cached hit rate > 0" "$(screen | grep -E 'hit')"; fi
b1=$(echo "$before" | head -1); b2=$(echo "$before" | tail -1); a1=$(echo "$after" | head -1); a2=$(echo "$after" | tail -1)
if [ -n "$b1" ] && [ "$a1" = "$b2" ] && [ "$a2" = "$b1" ]; then ok "Shift-Down swapped '$b1' and '$b2' on screen"; else bad "block order changed" "before: $before / after: $after"; fi

# 6. Resize: everything is laid out again, nothing lost.
tmux resize-window -t "$S" -x 100 -y 30 2>/dev/null || tmux resize-pane -t "$S" -x 100 -y 30
sleep 1
if screen | grep -q "cached" && screen | grep -q "baseline" && [ "$(screen | head -1 | wc -m)" -le 101 ]; then ok "resized to 100x30 and re-laid out"; else bad "resize" "$(screen)"; fi
tmux resize-window -t "$S" -x 160 -y 45 2>/dev/null || true
sleep 0.5

# 7. Ctrl-C quits and restores the terminal.
tmux send-keys -t "$S" C-c
for _ in $(seq 1 20); do [ -f "$OUT/exit" ] && break; sleep 0.5; done
if [ -f "$OUT/exit" ] && grep -q "EXIT=0" "$OUT/exit"; then ok "Ctrl-C quits with status 0"; else bad "Ctrl-C quits" "$(cat "$OUT/exit" 2>/dev/null) $(screen | tail -5)"; fi
tmux send-keys -t "$S" "stty -a > $OUT/stty-after" Enter
sleep 1
if [ -f "$OUT/stty-after" ] && diff -q "$OUT/stty-before" "$OUT/stty-after" >/dev/null; then ok "terminal modes restored exactly"; else bad "terminal restored" "$(diff "$OUT/stty-before" "$OUT/stty-after" 2>&1)"; fi
if screen | grep -q "EXIT=\|stty -a"; then ok "back on the shell's normal screen"; else bad "normal screen" "$(screen)"; fi

# 8. generate: a chat answer and its timing line; a misused option is a one-line error.
gen=$("$BIN" generate --chat --system "" --prompt "What is the capital of France?" --max-tokens 24 2>&1)
if echo "$gen" | grep -q "Paris" && echo "$gen" | grep -qE "^\[16 prompt tokens · prefill [0-9.]+ tok/s · [0-9]+ generated"; then
    ok "generate --chat --system \"\" answers Paris, with a timing line"
else bad "generate --chat answers" "$gen"; fi
err=$("$BIN" generate --system x --prompt hi 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && echo "$err" | grep -q "add --chat"; then
    ok "generate --system without --chat: one-line error, status $rc"
else bad "generate --system without --chat" "status $rc: $err"; fi
# 9. Talks on the real model: autoplay records unattended through two loops; replay, export, report.
cat > "$OUT/talk.yaml" <<'YAML'
name: e2e talk
max_tokens: 6
documents:
  - id: brightwater
    text: Brightwater Analytics was founded in 2011 in Tromsø by Ingrid Halvorsen.
  - id: veltrona
    text: Veltrona Robotics builds orchard robots in Valence, France.
turns:
  - user: Who founded Brightwater?
    documents: [brightwater, veltrona]
    marker: first question
    hold: 0.5
  - user: Where is Veltrona?
    documents: [veltrona, brightwater]
    hold: 0.5
YAML
tmux send-keys -t "$S" "clear; LANG=C.UTF-8 $BIN chat --scenario $OUT/talk.yaml --autoplay --typing-cps 40 --loop --record $OUT/talk.session --no-disk 2> $OUT/rec.err; echo EXIT=\$? > $OUT/exit2" Enter
if wait_for "● REC · AUTOPLAY" 1 60; then ok "autoplay with --record shows ● REC · AUTOPLAY"; else bad "autoplay starts" "$(screen)"; fi
loops=0
for _ in $(seq 1 600); do
    loops=$(grep -c '"resetRequested"' "$OUT/talk.session" 2>/dev/null); loops=${loops:-0}
    [ "$loops" -ge 2 ] && break
    sleep 1
done
if [ "$loops" -ge 2 ]; then ok "autoplay --loop went through two loops (reset to cold twice)"; else bad "two autoplay loops" "$(screen | tail -8)"; fi
tmux send-keys -t "$S" C-c
for _ in $(seq 1 20); do [ -f "$OUT/exit2" ] && break; sleep 0.5; done
turns=$(grep -c '"turnCompleted"' "$OUT/talk.session"); marks=$(grep -c '"markerDropped"' "$OUT/talk.session")
if grep -q "EXIT=0" "$OUT/exit2" 2>/dev/null && [ "$turns" -ge 4 ] && [ "$marks" -ge 4 ] && grep -q "recorded [0-9]* events" "$OUT/rec.err"; then
    ok "the recording holds $turns turns and $marks markers ($(cat "$OUT/rec.err"))"
else bad "autoplay recording" "exit $(cat "$OUT/exit2" 2>/dev/null), $turns turns, $marks markers, $(cat "$OUT/rec.err")"; fi
tmux resize-window -t "$S" -x 100 -y 30 2>/dev/null || tmux resize-pane -t "$S" -x 100 -y 30
tmux send-keys -t "$S" "clear; stty -a > $OUT/stty-before3; LANG=C.UTF-8 $BIN replay $OUT/talk.session --speed 4 --pause-at-markers; echo EXIT=\$? > $OUT/exit3; stty -a > $OUT/stty-after3" Enter
if wait_for "❚❚ paused .* ×4" 1 60 && screen | grep -q "● marker 1: first question" && [ "$(screen | head -1 | wc -m)" -le 101 ]; then
    ok "replay at 100x30, ×4, paused at the first marker"
else bad "replay pauses at the marker" "$(screen)"; fi
tmux send-keys -t "$S" q
for _ in $(seq 1 20); do [ -f "$OUT/exit3" ] && break; sleep 0.5; done
if grep -q "EXIT=0" "$OUT/exit3" 2>/dev/null; then ok "q quits the replay"; else bad "replay quits" "$(screen | tail -5)"; fi
sleep 0.5
if [ -f "$OUT/stty-after3" ] && diff -q "$OUT/stty-before3" "$OUT/stty-after3" >/dev/null; then ok "terminal modes restored exactly after the replay"; else bad "terminal restored after replay" "$(diff "$OUT/stty-before3" "$OUT/stty-after3" 2>&1)"; fi
tmux resize-window -t "$S" -x 160 -y 45 2>/dev/null || true
exp=$("$BIN" export "$OUT/talk.session" -o "$OUT/talk.cast" --size 120x36 --idle-limit 1 2>&1)
played=$(script -qec "asciinema cat $OUT/talk.cast" /dev/null < /dev/null 2>&1 | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g')
if echo "$played" | grep -q "Who founded Brightwater?" && echo "$played" | grep -qE "TTFT [0-9.]+ m?s"; then
    ok "export plays in asciinema: question and TTFT ($exp)"
else bad "export plays in asciinema" "$exp $(echo "$played" | tail -c 400)"; fi
rep=$("$BIN" report "$OUT/talk.session" -o "$OUT/talk.svg" 2>&1)
if grep -q "Time to first token per turn" "$OUT/talk.svg" 2>/dev/null && echo "$rep" | grep -q "speed-up per turn"; then
    ok "report draws the SVG ($rep)"
else bad "report" "$rep"; fi
err=$("$BIN" chat --record /nonexistent/dir/x.session --no-disk 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && echo "$err" | grep -q "cannot record to /nonexistent/dir/x.session"; then
    ok "an unwritable --record path is a one-line error before the screen opens"
else bad "unwritable --record" "status $rc: $err"; fi
# 10. Hostile or clumsy options: one-line errors, non-zero status; clamps say so.
err=$("$BIN" generate --prompt hi --max-tokens=-1 2>&1); rc=$?
if [ $rc -ne 0 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && echo "$err" | grep -q "max-tokens must be at least 1"; then
    ok "--max-tokens=-1: one-line error, status $rc"
else bad "--max-tokens=-1 refused" "status $rc: $err"; fi
err=$("$BIN" chat --doc /nonexistent/kvduel-doc.txt 2>&1); rc=$?
if [ $rc -ne 0 ] && echo "$err" | grep -q "/nonexistent/kvduel-doc.txt: no such file"; then
    ok "--doc on a missing file names it, status $rc"
else bad "--doc missing file named" "status $rc: $err"; fi
gen=$("$BIN" generate --prompt hi --max-tokens 2 --threads 1000 2>&1); rc=$?
if [ $rc -eq 0 ] && echo "$gen" | grep -q "threads 1000 is more than the" && echo "$gen" | grep -qE "· [0-9]+ threads\]"; then
    ok "--threads 1000 is clamped to the cores, and says so"
else bad "--threads 1000 clamped" "status $rc: $gen"; fi
for arg in "--load-strategy=fastest|must be one of cake, load, compute" "--remote-bandwidth=0|must be a positive number of MB/s" \
           "--remote-bandwidth=nan|must be a positive number of MB/s" "--remote-latency=-5|must be 0 or more milliseconds" \
           "--disk-bandwidth=-1|must be a positive number of MB/s"; do
    opt=${arg%%|*}; want=${arg#*|}
    err=$("$BIN" chat "$opt" --no-disk 2>&1); rc=$?
    if [ $rc -ne 0 ] && [ "$(echo "$err" | wc -l)" -eq 1 ] && echo "$err" | grep -q -- "$want"; then
        ok "chat $opt: one-line error before the screen opens, status $rc"
    else bad "chat $opt refused in one line" "status $rc: $err"; fi
done

# 11. Cake over a shared tier on a dialed link: instance A answers and writes its KV to Redis;
# a fresh instance B, reading over a 3 MB/s link, computes from the front while it loads from
# the back, and shows where the two sides met. (Which strategy is faster is measured by
# `bench cake`, not here.) Needs a Redis server: KVDUEL_TEST_REDIS (.ci/run starts one).
if [ -z "${KVDUEL_TEST_REDIS:-}" ]; then
    if [ "${CI:-}" = "true" ]; then bad "KVDUEL_TEST_REDIS is set for the Cake check"; else echo "skip - Cake over a throttled shared tier (no KVDUEL_TEST_REDIS)"; fi
    finish
fi
R="${KVDUEL_TEST_REDIS%/}/7"   # a database of its own
redis-cli -u "$R" flushdb >/dev/null 2>&1
Q="Which tunnel do Kestrel Freight trains use between Lyon and Turin?"
tmux send-keys -t "$S" "clear; LANG=C.UTF-8 $BIN chat --remote $R --kv-encoding f16 --max-tokens 4 --no-disk; echo EXIT=\$? > $OUT/exitA" Enter
wait_for "type a question and press Enter" 1 60
tmux send-keys -t "$S" -l "$Q"
tmux send-keys -t "$S" Enter
if wait_for "TTFT [0-9.]+ m?s · reused" 2 600; then ok "instance A answers with the shared tier on"; else bad "instance A answers" "$(screen)"; finish; fi
sleep 2   # its chunks reach Redis after the answer
tmux send-keys -t "$S" C-c
sleep 1
keys=$(redis-cli -u "$R" dbsize 2>/dev/null)
if [ -n "$keys" ] && [ "$keys" -gt 0 ]; then ok "instance A left its KV in Redis ($keys keys)"; else bad "KV in Redis" "dbsize: $keys"; fi
tmux send-keys -t "$S" "clear; LANG=C.UTF-8 $BIN chat --remote $R --kv-encoding f16 --remote-bandwidth 3 --load-strategy cake --max-tokens 4 --no-disk; echo EXIT=\$? > $OUT/exitB" Enter
wait_for "type a question and press Enter" 1 60
if screen | grep -qE "link remote 3(\.0)? MB/s" && screen | grep -q "prefix: cake"; then ok "instance B names its link and strategy in the top bar"
else bad "link and strategy in the top bar" "$(screen | head -3)"; fi
tmux send-keys -t "$S" -l "$Q"
tmux send-keys -t "$S" Enter
if wait_for "TTFT [0-9.]+ m?s · reused" 2 600; then ok "instance B answers over the 3 MB/s link"; else bad "instance B answers" "$(screen)"; finish; fi
split=$(screen | grep -oE "computed [0-9]+–[0-9]+ ▸ ◂ loaded [0-9]+–[0-9]+ from remote" | head -1)
if [ -n "$split" ]; then
    c1=$(echo "$split" | sed -E 's/computed [0-9]+–([0-9]+) .*/\1/'); l0=$(echo "$split" | sed -E 's/.*loaded ([0-9]+)–.*/\1/')
    if [ $((c1 + 1)) -eq "$l0" ]; then ok "instance B shows where Cake met: $split"; else bad "the two sides meet exactly" "$split"; fi
else bad "instance B shows the Cake split" "$(screen)"; fi
if screen | grep -q "same answer as baseline"; then ok "instance B's answer equals the baseline's"; else bad "same answer as baseline" "$(screen | grep -iE 'answer|differ')"; fi
tmux send-keys -t "$S" C-c
sleep 1
redis-cli -u "$R" flushdb >/dev/null 2>&1
finish
