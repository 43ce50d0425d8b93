"""
NAME
    channel_probe - run hd-channel-probe (tests/support/channel_probe.c)

DESCRIPTION
    probe_path() finds the probe: $HERALD_CHANNEL_PROBE, else
    $HERALD_BUILD_DIR/tests/hd-channel-probe (the CMake target), else it
    compiles tests/support/channel_probe.c once into a temp dir against
    the static libraries of $HERALD_BUILD_DIR (herald_channels and
    herald_common), so the tests run before the target is wired.
    run(driver, config_text, lines) writes the config, feeds the JSON
    lines and returns (results by delivery_id, stderr text, exit code).
"""
import json
import os
import shutil
import subprocess
import tempfile

_built = None


def _dirs():
    here = os.path.dirname(os.path.abspath(__file__))
    src = os.environ.get("HERALD_SOURCE_DIR") or os.path.dirname(os.path.dirname(here))
    build = os.environ.get("HERALD_BUILD_DIR") or os.path.join(src, "build")
    return src, build


def _pkg_libs(*names):
    out = subprocess.run(["pkg-config", "--libs"] + list(names), check=True,
                         capture_output=True, text=True).stdout
    return out.split()


def probe_path():
    global _built
    env = os.environ.get("HERALD_CHANNEL_PROBE")
    if env:
        return env
    src, build = _dirs()
    for cand in (os.path.join(build, "tests", "hd-channel-probe"),
                 os.path.join(build, "tests", "support", "hd-channel-probe")):
        if os.access(cand, os.X_OK):
            return cand
    if _built:
        return _built
    out_dir = tempfile.mkdtemp(prefix="hd-channel-probe-")
    exe = os.path.join(out_dir, "hd-channel-probe")
    libs = [os.path.join(build, "channels", "libherald_channels.a"),
            os.path.join(build, "common", "libherald_common.a")]
    for lib in libs:
        if not os.path.exists(lib):
            raise RuntimeError("no probe and no %s: build the tree first" % lib)
    cmd = (["cc", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-O1", "-g",
            "-I", os.path.join(src, "common"), "-I", os.path.join(src, "channels"),
            "-o", exe, os.path.join(src, "tests", "support", "channel_probe.c")]
           + libs + _pkg_libs("libesmtp-1.0", "libcurl", "jansson", "libconfig",
                              "libsodium", "libzmq", "msgpack", "openssl")
           + ["-lpthread"])
    subprocess.run(cmd, check=True)
    _built = exe
    return exe


def run(driver, config_text, lines, timeout=60, env=None):
    tmp = tempfile.mkdtemp(prefix="probe-run-")
    try:
        cfg = os.path.join(tmp, "probe.cfg")
        with open(cfg, "w") as f:
            f.write(config_text)
        stdin = "".join(json.dumps(l) + "\n" for l in lines)
        full_env = dict(os.environ)
        full_env.update(env or {})
        p = subprocess.run([probe_path(), "--driver", driver, "--config", cfg],
                           input=stdin, capture_output=True, text=True, timeout=timeout,
                           env=full_env)
        results = {}
        for line in p.stdout.splitlines():
            r = json.loads(line)
            assert r["delivery_id"] not in results, "reported twice: %r" % r
            results[r["delivery_id"]] = r
        return results, p.stderr, p.returncode
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
