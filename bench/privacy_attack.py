#!/usr/bin/env python3
"""A curious department reverses the tags in its own ledger (docs/LEDGER.md, "Why nothing in an
entry is reversible").

    CAUSEWAY_BIN=target/release/causeway bench/privacy_attack.py causeway-demo civil-registry

Acting as DEPT with only what it holds (the tag key its causeway.toml names, and its own ledger),
enumerate every national id D000000..D999999 and count the subject and officer tags it recovers:
its own (the subject tags it wrote as a provider, its officers' tags) and the other departments'
(the providers' subject tags in its consumer-side entries, the consumers' officer tags in its
provider-side entries). With a federation-wide tag key every tag comes back; with per-department
keys, none of the others' do. The cargo test tests/tests/privacy_attacks.rs is the CI version.
"""
import hashlib
import hmac
import json
import os
import re
import subprocess
import sys
import time


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    demo, dept = sys.argv[1], sys.argv[2]
    binary = os.environ.get("CAUSEWAY_BIN", "target/release/causeway")
    config_path = os.path.join(demo, dept, "causeway.toml")
    config = open(config_path).read()
    match = re.search(r'^tag_key\s*=\s*"([^"]+)"', config, re.M)
    if not match:
        sys.exit(f"{config_path} names no tag_key")
    text = open(os.path.join(demo, dept, match.group(1))).read().strip()
    key = bytes.fromhex(text.split(":", 1)[-1])

    shown = subprocess.run(
        [binary, "log", "show", "--output", "json", "--limit", "1000000",
         "--ledger", os.path.join(demo, dept, "ledger")],
        check=True, capture_output=True, text=True).stdout
    own, others = set(), set()
    for entry in json.loads(shown):
        for tag in entry.get("subjects", []):
            (own if entry.get("provider") == dept else others).add(tag.split(":", 1)[-1])
        officer = entry.get("officer")
        if officer:
            (own if entry.get("consumer") == dept else others).add(officer.split(":", 1)[-1])

    started = time.monotonic()
    keyed = hmac.new(key, digestmod=hashlib.sha256)
    recovered = {}
    for n in range(1_000_000):
        national_id = f"D{n:06d}".encode()
        for domain in (b"subject\n", b"officer\n"):
            mac = keyed.copy()
            mac.update(domain + national_id)
            digest = mac.hexdigest()
            if digest in own or digest in others:
                recovered[digest] = national_id.decode()
    took = time.monotonic() - started
    got_own = sum(1 for t in recovered if t in own)
    got_others = sum(1 for t in recovered if t in others)
    print(f"{dept}: 10^6 ids x 2 domains in {took:.1f} s; recovered {got_others} of "
          f"{len(others)} tags written by other departments, {got_own} of {len(own)} of its own")


if __name__ == "__main__":
    main()
