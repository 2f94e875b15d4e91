#!/usr/bin/env bash
# Moves the private keys of a revocd directory (as `revocd init` writes it)
# into a SoftHSM2 token, deletes the key files, and points the config at the
# token with PKCS#11 URIs. A first try of "keys in an HSM" without HSM
# knowledge:
#
#   revocd init --dir demo
#   deploy/hsm/softhsm-demo.sh demo
#   SOFTHSM2_CONF=demo/softhsm2.conf revocd serve --config demo/revocd.toml
#
# Every `key = "FILE"` and `responder-key = "FILE"` line of DIR/revocd.toml
# whose file exists is imported (label = the file's name without .key) and
# replaced by `pkcs11:token=revocd;object=LABEL?module-path=...&pin-source=file:hsm.pin`.
# The user PIN is random, in DIR/hsm.pin (mode 600); the SO PIN in
# DIR/hsm.so-pin. SoftHSM keeps its tokens under DIR/softhsm-tokens unless
# SOFTHSM2_CONF is already set.
#
# Environment: REVOCD_PKCS11_MODULE, the module revocd should load (default:
# the SoftHSM2 module); REVOCD_HSM_TOKEN, the token label (default revocd).
set -euo pipefail

dir=${1:?usage: softhsm-demo.sh DIR}
config="$dir/revocd.toml"
[[ -f "$config" ]] || { echo "softhsm-demo: $config not found (run revocd init --dir $dir first)" >&2; exit 1; }
command -v softhsm2-util >/dev/null || { echo "softhsm-demo: softhsm2-util not found (apt-get install softhsm2)" >&2; exit 1; }

softhsm_module=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
    [[ -f "$m" ]] && { softhsm_module=$m; break; }
done
[[ -n "$softhsm_module" ]] || { echo "softhsm-demo: libsofthsm2.so not found" >&2; exit 1; }
module=${REVOCD_PKCS11_MODULE:-$softhsm_module}
token=${REVOCD_HSM_TOKEN:-revocd}

if [[ -z "${SOFTHSM2_CONF:-}" ]]; then
    mkdir -p "$dir/softhsm-tokens"
    chmod 700 "$dir/softhsm-tokens"
    printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
        "$(cd "$dir" && pwd)/softhsm-tokens" > "$dir/softhsm2.conf"
    export SOFTHSM2_CONF="$(cd "$dir" && pwd)/softhsm2.conf"
fi

umask 077
pin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
so_pin=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
printf '%s\n' "$pin" > "$dir/hsm.pin"
printf '%s\n' "$so_pin" > "$dir/hsm.so-pin"
softhsm2-util --init-token --free --label "$token" --pin "$pin" --so-pin "$so_pin" >/dev/null

id=0
for field in key responder-key; do
    file=$(sed -n "s/^$field = \"\\([^\"]*\\)\"$/\\1/p" "$config" | head -n1)
    [[ -n "$file" && "$file" != pkcs11:* ]] || continue
    path=$file
    [[ "$path" = /* ]] || path="$dir/$file"
    [[ -f "$path" ]] || continue
    label=$(basename "$file" .key)
    id=$((id + 1))
    softhsm2-util --import "$path" --token "$token" --label "$label" --id "$(printf '%02x' "$id")" --pin "$pin" >/dev/null
    # The key now lives only in the token.
    shred -u "$path" 2>/dev/null || rm -f "$path"
    uri="pkcs11:token=$token;object=$label?module-path=$module\\&pin-source=file:hsm.pin"
    sed -i "s|^$field = \"$file\"\$|$field = \"$uri\"|" "$config"
    echo "softhsm-demo: $file -> token $token, object $label (file deleted)"
done
echo "softhsm-demo: run revocd with SOFTHSM2_CONF=$SOFTHSM2_CONF"
