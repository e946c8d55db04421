#!/usr/bin/env bash
# Prepare this machine and the repository to run bpfrun: OS packages (BCC, compiler), kernel
# headers, tracefs, and a .venv on the OS python with the project installed editable.
#
# Idempotent: a second run does nothing and prints nothing. Every action is announced on stderr.
# Needs root (no sudo inside: fresh Debian/Ubuntu images have none).
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

SYSTEM_PYTHON=/usr/bin/python3
VENV=.venv
STAMP="$VENV/.bpfrun-installed"
KREL="$(uname -r)"

say() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

if [[ "$(id -u)" -ne 0 ]]; then
    die "needs root (it installs packages and mounts tracefs); re-run with: sudo $0"
fi

# --- distro ----------------------------------------------------------------------------------

DISTRO_ID=""
DISTRO_LIKE=""
if [[ -r /etc/os-release ]]; then
    # shellcheck source=/dev/null
    DISTRO_ID="$(. /etc/os-release && printf '%s' "${ID:-}")"
    # shellcheck source=/dev/null
    DISTRO_LIKE="$(. /etc/os-release && printf '%s' "${ID_LIKE:-}")"
fi
DISTRO_WORDS=" $DISTRO_ID $DISTRO_LIKE "

is_family() {  # is_family WORD...: true when ID or ID_LIKE names one of the words
    local w
    for w in "$@"; do
        [[ "$DISTRO_WORDS" == *" $w "* ]] && return 0
    done
    return 1
}

# --- Debian / Ubuntu -------------------------------------------------------------------------

APT_UPDATED=0

apt_update_once() {
    if [[ "$APT_UPDATED" -eq 0 ]]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
}

apt_install() {
    apt_update_once
    say "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

deb_installed() {
    [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

deb_available() {
    # apt-cache only knows packages after an update; a fresh image has empty lists.
    apt_update_once
    local candidate
    candidate="$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: //p' | head -n1)"
    [[ -n "$candidate" && "$candidate" != "(none)" ]]
}

headers_meta_package() {
    if is_family ubuntu; then
        echo linux-headers-generic
        return
    fi
    case "$(uname -m)" in
        x86_64) echo linux-headers-amd64 ;;
        aarch64) echo linux-headers-arm64 ;;
        *) echo "linux-headers-$(dpkg --print-architecture)" ;;
    esac
}

# The newest /lib/modules/<version> other than the running one that has headers; Debian splits
# headers into build (arch) and source (common), and BCC needs both, so prefer folders with both.
installed_headers_version() {
    local d best="" best_both=""
    for d in /lib/modules/*/; do
        d="${d%/}"
        [[ "${d##*/}" == "$KREL" ]] && continue
        [[ -L "$d" ]] && continue  # a workaround link (ours or another kernel's), not headers
        [[ -e "$d/build" ]] || continue
        best="$(printf '%s\n%s\n' "$best" "${d##*/}" | sed '/^$/d' | sort -V | tail -n1)"
        if [[ -e "$d/source" ]]; then
            best_both="$(printf '%s\n%s\n' "$best_both" "${d##*/}" | sed '/^$/d' | sort -V | tail -n1)"
        fi
    done
    printf '%s' "${best_both:-$best}"
}

setup_headers_debian() {
    [[ -e "/lib/modules/$KREL/build" ]] && return 0
    if deb_available "linux-headers-$KREL"; then
        apt_install "linux-headers-$KREL"
        return 0
    fi
    local meta version dir
    meta="$(headers_meta_package)"
    deb_installed "$meta" || apt_install "$meta"
    version="$(installed_headers_version)"
    [[ -n "$version" ]] || die "installed $meta but found no /lib/modules/<version>/build"
    dir="/lib/modules/$version"
    if [[ ! -e "/lib/modules/$KREL" && ! -L "/lib/modules/$KREL" ]]; then
        ln -s "$dir" "/lib/modules/$KREL"
        say "NOTE: no headers package exists for kernel $KREL (custom kernel). WORKAROUND:"
        say "      linked /lib/modules/$KREL -> $dir (headers of $meta)."
    elif [[ -d "/lib/modules/$KREL" && ! -L "/lib/modules/$KREL" ]]; then
        # A real modules folder is kept as it is; only the missing headers links are added.
        [[ -e "/lib/modules/$KREL/build" || -L "/lib/modules/$KREL/build" ]] \
            || ln -s "$dir/build" "/lib/modules/$KREL/build"
        [[ -e "/lib/modules/$KREL/source" || -L "/lib/modules/$KREL/source" ]] \
            || ln -s "$dir/source" "/lib/modules/$KREL/source"
        [[ -e "/lib/modules/$KREL/build" ]] \
            || die "/lib/modules/$KREL/build exists but points nowhere; fix or remove it"
        say "NOTE: no headers package exists for kernel $KREL (custom kernel). WORKAROUND:"
        say "      linked /lib/modules/$KREL/{build,source} -> $dir/{build,source} ($meta)."
    else
        die "/lib/modules/$KREL is a link that gives no build/ headers; fix or remove it, then re-run"
    fi
    say "      Fine for tracepoints, raw tracepoints, perf events and uprobes; kernel structs"
    say "      read through these headers would have the wrong layout (README: Troubleshooting)."
}

# llvm-symbolizer (>= 14, for its JSON output) gives stacks file:line and inlined frames
# (bpfrun/kernel/symbolize.py). Optional: without it frames are named from symbol tables only.
has_symbolizer() {
    local c major
    for c in llvm-symbolizer llvm-symbolizer-{14..20}; do
        command -v "$c" >/dev/null 2>&1 || continue
        major="$("$c" --version 2>/dev/null | sed -n 's/.*LLVM version \([0-9]*\).*/\1/p' | head -n1)"
        [[ -n "$major" && "$major" -ge 14 ]] && return 0
    done
    return 1
}

# The tools of the LLVM that BCC already links (libllvmNN), so only they are added; else the
# distribution's default `llvm`. Prints nothing when neither exists.
symbolizer_package() {
    local major
    major="$(dpkg-query -W -f='${Depends}' libbpfcc 2>/dev/null \
        | grep -o 'libllvm[0-9]*' | head -n1 | tr -dc '0-9' || true)"
    if [[ -n "$major" && "$major" -ge 14 ]] && deb_available "llvm-$major"; then
        echo "llvm-$major"
    elif deb_available llvm; then
        echo llvm
    fi
}

setup_debian() {
    local pkg missing=()
    # systemtap-sdt-dev: <sys/sdt.h>, for the USDT test workload.
    local pkgs=(python3-bpfcc bpfcc-tools gcc make python3-venv systemtap-sdt-dev)
    # chromium drives the report.html test (tests/test_html_chromium.py). It is big (~300 MB),
    # so only CI, which must run that test, or a contributor who asks for it gets it.
    if [[ "${CI:-}" == "true" || "${BPFRUN_WITH_CHROMIUM:-0}" == "1" ]]; then
        pkgs+=(chromium)
    fi
    # bpftrace is only a point of comparison for `make bench`, which asks for it.
    if [[ "${BPFRUN_WITH_BPFTRACE:-0}" == "1" ]]; then
        pkgs+=(bpftrace)
    fi
    for pkg in "${pkgs[@]}"; do
        deb_installed "$pkg" || missing+=("$pkg")
    done
    if ! has_symbolizer; then
        pkg="$(symbolizer_package)"
        if [[ -n "$pkg" ]]; then
            missing+=("$pkg")
        else
            say "NOTE: no llvm package found: stacks will name functions without file:line"
        fi
    fi
    if [[ "${#missing[@]}" -gt 0 ]]; then
        apt_install "${missing[@]}"
    fi
    setup_headers_debian
}

# --- Fedora / RHEL ---------------------------------------------------------------------------

setup_fedora() {
    local pkg missing=()
    for pkg in python3-bcc bcc-tools gcc make; do
        rpm -q "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [[ -e "/lib/modules/$KREL/build" ]] || missing+=("kernel-devel-$KREL")
    if [[ "${#missing[@]}" -gt 0 ]]; then
        die "missing packages; install them with:
    dnf install -y ${missing[*]}
and run this script again"
    fi
}

# --- tracefs ---------------------------------------------------------------------------------

setup_tracefs() {
    [[ -d /sys/kernel/tracing/events || -d /sys/kernel/debug/tracing/events ]] && return 0
    local ok=0
    if [[ -d /sys/kernel/tracing ]]; then
        say "mount -t tracefs nodev /sys/kernel/tracing"
        mount -t tracefs nodev /sys/kernel/tracing && ok=1
    else
        # Kernels before 4.1 only offer tracing below debugfs.
        say "mount -t debugfs nodev /sys/kernel/debug"
        mount -t debugfs nodev /sys/kernel/debug && ok=1
    fi
    if [[ "$ok" -eq 0 ]]; then
        # Not fatal: in a container this may be impossible; `bpfrun doctor` explains.
        say "WARNING: could not mount tracefs: no tracepoint can be found or attached"
    fi
}

# --- venv ------------------------------------------------------------------------------------

venv_cfg() {  # venv_cfg KEY: value of KEY in .venv/pyvenv.cfg
    sed -n "s/^$1 *= *//p" "$VENV/pyvenv.cfg" 2>/dev/null | head -n1
}

venv_is_right() {
    [[ -x "$VENV/bin/python" && -f "$VENV/pyvenv.cfg" ]] || return 1
    [[ "$(venv_cfg include-system-site-packages)" == "true" ]] || return 1
    [[ "$(venv_cfg home)" == "$(dirname "$SYSTEM_PYTHON")" ]] || return 1
    local want
    want="$("$SYSTEM_PYTHON" -c 'import platform; print(platform.python_version())')"
    [[ "$(venv_cfg version)" == "$want" || "$(venv_cfg version_info)" == "$want"* ]] || return 1
    "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1
}

setup_venv() {
    [[ -x "$SYSTEM_PYTHON" ]] || die "$SYSTEM_PYTHON not found: the OS python is needed (BCC is installed for it)"
    if [[ -e "$VENV" ]] && ! venv_is_right; then
        say "recreating $VENV (it was not made by $SYSTEM_PYTHON with --system-site-packages)"
        rm -rf "$VENV"
    fi
    if [[ ! -e "$VENV" ]]; then
        say "$SYSTEM_PYTHON -m venv --system-site-packages $VENV"
        "$SYSTEM_PYTHON" -m venv --system-site-packages "$VENV"
    fi

    local want_hash
    want_hash="$(sha256sum pyproject.toml | cut -d' ' -f1)"
    if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$want_hash" ]]; then
        say "pip install -e '.[dev]' (pyproject.toml changed or first install)"
        "$VENV/bin/python" -m pip install -q -e '.[dev]' >&2
        printf '%s\n' "$want_hash" >"$STAMP"
    fi
    # Byte-compile the package: with PYTHONDONTWRITEBYTECODE set (as in some CI images) every
    # start would compile bpfrun's sources again, ~0.1 s before any probe is attached.
    # Silent, and quick when the .pyc files are current.
    "$VENV/bin/python" -m compileall -q bpfrun >/dev/null

    remove_bcc_impostor
}

# The PyPI package "bcc" is an unrelated library whose top-level `bcc` would shadow iovisor BCC.
# Only a copy inside the venv is removed; the OS's own bcc egg-info lives outside it.
remove_bcc_impostor() {
    local site
    for site in "$VENV"/lib/python3*/site-packages; do
        if compgen -G "$site/bcc-*.dist-info" >/dev/null; then
            say "pip uninstall bcc: the PyPI package 'bcc' in $VENV is not iovisor BCC"
            # The venv's site-packages comes first on its path, so pip picks this copy.
            "$VENV/bin/python" -m pip uninstall -y -q bcc >&2
        fi
        if [[ -e "$site/bcc" ]]; then
            say "removing $site/bcc: a 'bcc' module in $VENV is never iovisor BCC"
            rm -rf "$site/bcc"
        fi
    done
}

check_bcc() {
    if ! "$VENV/bin/python" -c 'import bcc; bcc.BPF' >/dev/null 2>&1; then
        die "$VENV/bin/python cannot import iovisor BCC (import bcc; bcc.BPF failed).
    Debian/Ubuntu: apt-get install python3-bpfcc    Fedora/RHEL: dnf install python3-bcc
    Never 'pip install bcc': the PyPI package of that name is not iovisor BCC."
    fi
}

# --- main ------------------------------------------------------------------------------------

if is_family debian ubuntu; then
    setup_debian
elif is_family fedora rhel centos; then
    setup_fedora
else
    die "unsupported distribution '${DISTRO_ID:-unknown}'. Install by hand: BCC's python bindings
    (module 'bcc', e.g. python3-bpfcc / python3-bcc), BCC tools, headers for kernel $KREL, gcc,
    make and python3 venv support, then run this script again"
fi
setup_tracefs
setup_venv
check_bcc
