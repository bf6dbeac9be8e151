"""What unlocking the keystore costs: scrypt with the chosen parameters vs. one AES-256-GCM decrypt.

The scrypt cost is paid once per file opened (the password verifier, then each key a
node needs) when ``sniperbot run`` or ``sniperbot keys`` starts; it is also what a
password guesser pays per guess. The floor is the decrypt alone (what the unlock would
cost with a fast, non-memory-hard KDF). Figures: per-derivation time (median of N),
``Keystore.open`` (verifier), ``open + get`` of one entry, and the AES-GCM floor.
"""

from __future__ import annotations

import secrets
import statistics
import sys
import time

sys.path.append(str(__import__("pathlib").Path(__file__).resolve().parent.parent))

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench._common import emit, parse_args, short_tmp
from sniperbot.keystore import DEFAULT_SCRYPT, Keystore

PASSWORD = "bench password, not a secret"
FIELDS = {"apiKey": "k" * 64, "secret": "s" * 64}


def _median_s(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    args = parse_args(__doc__ or "")
    repeat = 3 if args.quick else 9
    kdf = DEFAULT_SCRYPT.fresh()
    figures: dict[str, object] = {
        "scrypt": {"n": kdf.n, "r": kdf.r, "p": kdf.p, "memory_mib": 128 * kdf.n * kdf.r // 2**20},
    }
    figures["scrypt_derive_ms"] = round(_median_s(lambda: kdf.derive(PASSWORD), repeat) * 1e3, 1)
    with short_tmp("sb-keys-") as tmp:
        store = Keystore.create(tmp / "ks", PASSWORD)
        store.add("main", "binance", FIELDS)
        figures["open_ms"] = round(_median_s(lambda: Keystore.open(tmp / "ks", PASSWORD), repeat) * 1e3, 1)
        figures["open_and_get_one_ms"] = round(
            _median_s(lambda: Keystore.open(tmp / "ks", PASSWORD).get("main"), repeat) * 1e3, 1
        )
    key, nonce = secrets.token_bytes(32), secrets.token_bytes(12)
    aead = AESGCM(key)
    blob = aead.encrypt(nonce, b'{"apiKey": "...", "secret": "..."}' * 4, b"header")
    n = 2000 if args.quick else 20000
    start = time.perf_counter()
    for _ in range(n):
        AESGCM(key).decrypt(nonce, blob, b"header")
    floor_us = (time.perf_counter() - start) / n * 1e6
    figures["aes_gcm_decrypt_floor_us"] = round(floor_us, 2)
    figures["derive_over_floor_x"] = round(figures["scrypt_derive_ms"] * 1e3 / floor_us)  # type: ignore[operator]
    print(
        f"scrypt n={kdf.n} r={kdf.r} p={kdf.p} ({figures['scrypt']['memory_mib']} MiB): "  # type: ignore[index]
        f"{figures['scrypt_derive_ms']} ms per derivation; open {figures['open_ms']} ms, "
        f"open+get {figures['open_and_get_one_ms']} ms; AES-GCM decrypt floor {floor_us:.2f} us"
    )
    emit("keystore", figures)


if __name__ == "__main__":
    main()
