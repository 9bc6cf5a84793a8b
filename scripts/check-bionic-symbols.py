#!/usr/bin/env python3
"""Checks that an Android shared library only needs libc/libm/libdl symbols the device has.

The NDK shim links against stub libraries that carry no symbols, so the linker cannot catch a
call into bionic that does not exist on the app's minimum Android version. This reads bionic's
own export lists (AOSP bionic/libc/libc.map.txt, libm.map.txt, libdl.map.txt) and fails, listing
the offenders, when an undefined symbol of the library is:

  - exported by bionic only from a later API level than --api (introduced=N, or the arm64
    specific introduced-arm64=N, from the symbol or from its version block);
  - exported for other architectures only (arm, x86, ... tags without arm64);
  - not part of the public NDK surface (LIBC_PRIVATE / *_PLATFORM versions, LIBC_DEPRECATED,
    symbols tagged apex, llndk, systemapi, platform-only or future);
  - exported by none of bionic's lists and not a recognisable symbol of another NDK library
    (liblog, libandroid, libcamera2ndk, libmediandk, EGL, GLES, Vulkan, libnativewindow, ...).

Weak undefined symbols are listed but do not fail the check (unless --strict-weak): the dynamic
linker resolves a missing weak symbol to null, and the code that declares one checks for that
before calling (Rust's std, for example, references getrandom (API 28) weakly and falls back to
the raw system call).

Usage: check-bionic-symbols.py [--api 26] [--arch arm64] [--strict-weak] --maps DIR LIB.so|APK ...
"""

import argparse
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ARCHES = {"arm", "arm64", "x86", "x86_64", "riscv64"}
# Tags that take a symbol out of what NDK apps may link against.
UNAVAILABLE_TAGS = {"apex", "llndk", "systemapi", "platform-only", "future"}
CODENAMES = {"L": 21, "M": 23, "N": 24, "O": 26, "P": 28, "Q": 29, "R": 30, "S": 31, "T": 33, "U": 34, "V": 35}
# Symbols of the other NDK system libraries (they have no export list here). verify-apk.sh
# checks separately that only NDK libraries are needed.
OTHER_NDK = re.compile(
    r"^(__android_log_\w+|A[A-Z][A-Za-z0-9]*_\w+|android_\w+|vk[A-Z]\w*|egl[A-Z]\w*|gl[A-Z]\w*|"
    r"JNI_\w+|sync_\w+|ANeuralNetworks\w*)$"
)


def parse_tags(comment):
    return comment.split() if comment else []


def introduced(tags, arch):
    """API level from the tags (arch-specific first), None when not tagged, -1 when unknown."""
    value = None
    for t in tags:
        if t.startswith(f"introduced-{arch}="):
            value = t.split("=", 1)[1]
            break
    else:
        for t in tags:
            if t.startswith("introduced="):
                value = t.split("=", 1)[1]
    if value is None:
        return None
    if value.isdigit():
        return int(value)
    return CODENAMES.get(value, -1)


def parse_map(path):
    """Yields (symbol, version, version_tags, symbol_tags) for every global symbol."""
    version, vtags, scope = None, [], None
    for raw in Path(path).read_text().splitlines():
        line, _, comment = raw.partition("#")
        line = line.strip()
        if not line:
            continue
        m = re.match(r"^([A-Za-z0-9_]+)\s*\{$", line)
        if m:
            version, vtags, scope = m.group(1), parse_tags(comment.strip()), None
            continue
        if line.startswith("}"):
            version, vtags, scope = None, [], None
            continue
        if line in ("global:", "local:"):
            scope = line[:-1]
            continue
        if version and scope != "local" and line.endswith(";"):
            yield line[:-1].strip(), version, vtags, parse_tags(comment.strip())


def availability(entries, api, arch):
    """None when the symbol may be used at `api` on `arch`, else the reason it may not."""
    reasons = []
    for version, vtags, stags in entries:
        tags = vtags + stags
        if version.endswith("_PRIVATE") or version.endswith("_PLATFORM"):
            reasons.append(f"platform-private ({version})")
            continue
        if version.endswith("_DEPRECATED"):
            reasons.append(f"deprecated ({version})")
            continue
        hidden = UNAVAILABLE_TAGS.intersection(tags)
        if hidden:
            reasons.append(f"not in the NDK (tagged {', '.join(sorted(hidden))})")
            continue
        # Symbol-level arch tags win over the version's.
        arch_tags = ARCHES.intersection(stags) or ARCHES.intersection(vtags)
        if arch_tags and arch not in arch_tags:
            reasons.append(f"only on {' '.join(sorted(arch_tags))}")
            continue
        level = introduced(stags, arch)
        if level is None:
            level = introduced(vtags, arch)
        if level == -1:
            reasons.append("introduced in an unreleased API level")
            continue
        if level is not None and level > api:
            reasons.append(f"introduced in API {level}")
            continue
        return None
    return "; ".join(sorted(set(reasons)))


def undefined_symbols(so):
    nm = next((t for t in ("llvm-nm-14", "llvm-nm", "nm") if subprocess.run(["sh", "-c", f"command -v {t}"], capture_output=True).returncode == 0), None)
    if nm is None:
        sys.exit("check-bionic-symbols: llvm-nm (llvm-14) not found")
    out = subprocess.run([nm, "-D", "--undefined-only", str(so)], capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"check-bionic-symbols: {nm} failed on {so}: {out.stderr.strip()}")
    syms = []
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            kind, name = parts[-2], parts[-1].split("@")[0]
            syms.append((name, kind.lower() == "w"))
    return sorted(set(syms))


def libraries(paths, tmp):
    for p in paths:
        p = Path(p)
        if p.suffix == ".apk":
            with zipfile.ZipFile(p) as z:
                names = [n for n in z.namelist() if n.startswith("lib/arm64-v8a/") and n.endswith(".so")]
                if not names:
                    sys.exit(f"check-bionic-symbols: {p} has no lib/arm64-v8a/*.so")
                for n in names:
                    yield n, Path(z.extract(n, tmp))
        elif p.is_file():
            yield str(p), p
        else:
            sys.exit(f"check-bionic-symbols: {p} does not exist")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", type=int, default=26, help="the app's minSdk (default 26)")
    ap.add_argument("--arch", default="arm64", choices=sorted(ARCHES))
    ap.add_argument("--maps", required=True, help="folder with bionic's *.map.txt export lists")
    ap.add_argument("--strict-weak", action="store_true", help="fail on unavailable weak symbols too")
    ap.add_argument("files", nargs="+", help="shared libraries or APKs")
    a = ap.parse_args()

    maps = sorted(Path(a.maps).glob("*.map.txt"))
    if not maps:
        sys.exit(f"check-bionic-symbols: no *.map.txt in {a.maps}")
    exports = {}
    for m in maps:
        for sym, version, vtags, stags in parse_map(m):
            exports.setdefault(sym, []).append((version, vtags, stags))

    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        for name, so in libraries(a.files, tmp):
            syms = undefined_symbols(so)
            bad, optional, other, ok = [], [], [], 0
            for sym, weak in syms:
                if sym in exports:
                    why = availability(exports[sym], a.api, a.arch)
                elif OTHER_NDK.match(sym):
                    other.append(sym)
                    continue
                else:
                    why = "exported by no bionic list and not an NDK library symbol"
                if why is None:
                    ok += 1
                elif weak and not a.strict_weak:
                    optional.append((sym, why))
                else:
                    bad.append((sym, why + (" [weak]" if weak else "")))
            print(
                f"{name}: {len(syms)} undefined symbols: {ok} in bionic libc/libm/libdl at API <= {a.api} ({a.arch}), "
                f"{len(other)} from other NDK libraries, {len(optional)} weak and optional, {len(bad)} not available"
            )
            for sym, why in optional:
                print(f"  optional (weak, null when absent): {sym}: {why}")
            for sym, why in bad:
                print(f"  NOT AVAILABLE: {sym}: {why}")
            failed |= bool(bad)
    if failed:
        print(f"FAIL: symbols above are missing on Android API {a.api} devices", file=sys.stderr)
        return 1
    print("bionic symbols OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
