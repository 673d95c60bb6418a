#!/usr/bin/env bash
# The C kernels on every instruction set we can run here, against each other:
#   x86 with AVX2 (and AVX-512 VNNI / AVX-VNNI when this CPU has them), x86 portable C,
#   aarch64 NEON with and without the dot-product extension under user-mode QEMU (gcc, and clang).
# qgemm_paths checks each build's matrix-product paths bit for bit against its portable one;
# attend_paths checks attention's head-group invariance (on f16 K/V) and the f16 conversions
# against a reference. Across builds, every `digest` line must
# be equal, and every `digest-simd` line must be equal among the vector builds (AVX2, NEON): the
# portable attention sums in another order. QEMU says nothing about speed.
# Needs qemu-user and gcc-aarch64-linux-gnu (.ci/run installs them): without them the ARM part is
# a failure under CI=true and a skip otherwise. Prints "N passed, N failed".
set -u
cd "$(dirname "$0")/../.."
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
pass=0; fail=0
ok()  { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; [ -n "${2:-}" ] && echo "$2" | sed 's/^/       /'; }
flags="-O3 -ffp-contract=off -ISources/CKernels/include"
CC=${CC:-cc}
ref=""; simdref=""

# build NAME COMPILER FLAGS...: both test programs for one target.
build() {
    local name=$1 cc=$2; shift 2
    "$cc" $flags "$@" Tests/ckernels/qgemm_paths.c Sources/CKernels/qgemm.c -lm -o "$out/$name-qgemm" &&
    "$cc" $flags "$@" Tests/ckernels/attend_paths.c Sources/CKernels/ckernels.c -lm -o "$out/$name-attend" ||
    { bad "$name builds"; return 1; }
}
# run NAME SIMD(0/1) RUNNER...: runs a build's programs; compares its digests with the first build's.
run() {
    local name=$1 simd=$2 bin=$3; shift 3
    for prog in qgemm attend; do
        if ! "$@" "$out/$bin-$prog" > "$out/$name-$prog.txt" 2>&1; then
            bad "$name $prog: its own checks" "$(grep -E 'FAIL|mismatch|passed' "$out/$name-$prog.txt" | head -5)"
            return
        fi
    done
    ok "$name: $(grep '^paths' "$out/$name-qgemm.txt"): each equals the portable path bit for bit; attention head-group invariant"
    cat "$out/$name-qgemm.txt" "$out/$name-attend.txt" | grep '^digest ' > "$out/$name.digest"
    cat "$out/$name-attend.txt" | grep '^digest-simd ' > "$out/$name.simd"
    if [ -z "$ref" ]; then ref=$name
    elif cmp -s "$out/$ref.digest" "$out/$name.digest"; then ok "$name: matrix products, RMSNorm and f16 conversions give $ref's bits"
    else bad "$name: matrix products, RMSNorm and f16 conversions give $ref's bits" "$(diff "$out/$ref.digest" "$out/$name.digest")"; fi
    [ "$simd" = 1 ] || return
    if [ -z "$simdref" ]; then simdref=$name
    elif cmp -s "$out/$simdref.simd" "$out/$name.simd"; then ok "$name: attention, softmax and SiLU give $simdref's bits"
    else bad "$name: attention, softmax and SiLU give $simdref's bits" "$(diff "$out/$simdref.simd" "$out/$name.simd")"; fi
}

if [ "$(uname -m)" = x86_64 ] && grep -qw avx2 /proc/cpuinfo; then
    build x86-avx2 "$CC" -mavx2 -mfma -mf16c && run x86-avx2 1 x86-avx2
fi
build host-portable "$CC" && run host-portable 0 host-portable

armcc=$(command -v aarch64-linux-gnu-gcc || true)
qemu=$(command -v qemu-aarch64 || command -v qemu-aarch64-static || true)
if [ -z "$armcc" ] || [ -z "$qemu" ]; then
    if [ "${CI:-}" = true ]; then bad "aarch64 cross compiler and qemu-aarch64 are installed"
    else echo "skip - aarch64: install qemu-user and gcc-aarch64-linux-gnu to run the NEON paths"; fi
else
    if build arm-gcc "$armcc" -static; then
        run arm-dotprod 1 arm-gcc "$qemu" -cpu max
        run arm-neon 1 arm-gcc "$qemu" -cpu cortex-a57   # ARMv8.0: no dot product
    fi
    # Apple's compiler is clang: build the kernels with it too when one here targets aarch64.
    clang=$(command -v clang || ls /opt/swift/usr/bin/clang 2>/dev/null || true)
    if [ -n "$clang" ] && "$clang" --target=aarch64-linux-gnu $flags -c Sources/CKernels/qgemm.c -o "$out/q.o" 2>/dev/null &&
        "$clang" --target=aarch64-linux-gnu $flags -c Sources/CKernels/ckernels.c -o "$out/k.o" 2>/dev/null; then
        if "$armcc" $flags -static Tests/ckernels/qgemm_paths.c "$out/q.o" -lm -o "$out/arm-clang-qgemm" &&
           "$armcc" $flags -static Tests/ckernels/attend_paths.c "$out/k.o" -lm -o "$out/arm-clang-attend"; then
            run arm-clang-dotprod 1 arm-clang "$qemu" -cpu max
        else bad "aarch64 clang objects link"; fi
    fi
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
