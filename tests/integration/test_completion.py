"""test_completion.py: `husk completion bash|zsh|fish` offers husk's verbs and each verb's
commands, as the CLI's own tables have them: the scripts are run by the real shells, and every
command offered is one its verb runs (and every verb that refuses unknown commands offers its
own). No stack: the CLI alone, pointed at a port where nothing listens."""

import re
import shutil
import subprocess

import pytest

from husk_stack import BUILD, require

# On one worker: the module's fixture is made once (conftest.py).
pytestmark = pytest.mark.xdist_group("completion")

HUSK = BUILD / "bin" / "husk"


def run(*args, timeout=10, tmp_path=None):
    env = {"PATH": "/usr/bin:/bin", "HUSK_HOST": "http://127.0.0.1:9", "HOME": str(tmp_path or "/nonexistent"),
           "HUSK_CONFIG": "/nonexistent/config.yaml"}
    return subprocess.run([str(HUSK), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, env=env)


def help_verbs(*verb):
    """The verbs `husk --help` lists, or a verb's commands `husk VERB --help` lists (written from
    the same tables)."""
    out = run(*verb, "--help").stdout
    block = out[out.index("Commands:\n") + len("Commands:\n"):out.index("\n\n", out.index("Commands:\n"))]
    return [line.split()[0] for line in block.splitlines()]


def bash_complete(script, *words):
    """COMPREPLY for the command line `husk WORDS...` (the last word being completed)."""
    line = " ".join(f"'{w}'" for w in ("husk",) + words)
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c",
                        f'source "$1"; COMP_WORDS=({line}); COMP_CWORD={len(words)}; _husk; '
                        'printf "%s\\n" "${COMPREPLY[@]}"', "bash", script],
                       capture_output=True, text=True, timeout=10, check=True)
    return [w for w in r.stdout.splitlines() if w]


@pytest.fixture(scope="module")
def scripts(tmp_path_factory):
    d = tmp_path_factory.mktemp("completion")
    out = {}
    for shell in ("bash", "zsh", "fish"):
        r = run("completion", shell)
        assert r.returncode == 0 and r.stdout, r.stderr
        (d / shell).write_text(r.stdout)
        out[shell] = d / shell
    return out


def test_bash_offers_verbs_and_commands(scripts, tmp_path):
    verbs = help_verbs()
    assert {"deployment", "node", "doctor", "completion"} <= set(verbs)
    assert bash_complete(scripts["bash"], "") == verbs
    assert bash_complete(scripts["bash"], "dep") == ["deployment"]
    assert bash_complete(scripts["bash"], "--host", "http://h:1", "no") == ["node"]
    assert "--context" in bash_complete(scripts["bash"], "--c")
    assert bash_complete(scripts["bash"], "deployment", "") == help_verbs("deployment")
    assert {"list", "inspect", "delete", "exec", "logs"} <= set(help_verbs("deployment"))
    assert bash_complete(scripts["bash"], "completion", "") == ["bash", "zsh", "fish"]
    assert bash_complete(scripts["bash"], "deployment", "list", "") == []  # past the command: nothing made up

    # Every verb: what completion offers after it is exactly what it runs. A verb that refuses an
    # unknown command has a table, and completion offers it; every command offered runs (it may
    # fail for want of a server or an argument, never as an unknown command).
    for verb in verbs:
        offered = bash_complete(scripts["bash"], verb, "")
        try:
            refused = run(verb, "no-such-command", tmp_path=tmp_path, timeout=5)
            says_unknown = "unknown command 'no-such-command'" in refused.stderr
        except subprocess.TimeoutExpired:  # husk tap PATTERN listens until interrupted
            says_unknown = False
        assert bool(offered) == says_unknown, (verb, offered, says_unknown)
        for command in offered:
            try:
                r = run(verb, command, tmp_path=tmp_path, timeout=5)
            except subprocess.TimeoutExpired:
                continue
            assert "unknown command" not in r.stderr, (verb, command, r.stderr)


def test_zsh_describes_verbs_and_commands(scripts):
    require(shutil.which("zsh"), "zsh is not installed (deploy/install-deps.sh)")

    def describe(*words):
        # _describe and compdef stand in for compinit's: print what would be offered.
        ws = " ".join(f"'{w}'" for w in ("husk",) + words)
        r = subprocess.run(["zsh", "-f", "-c", 'compdef() {}; _describe() { print -l -- ${(P)${@[-1]}} }; '
                            f'source "$1"; words=({ws}); CURRENT={len(words) + 1}; _husk', "zsh", scripts["zsh"]],
                           capture_output=True, text=True, timeout=10)
        return [line.split(":", 1)[0] for line in r.stdout.splitlines()]
    assert describe("") == help_verbs()
    assert describe("-H", "x", "") == help_verbs()
    assert describe("token", "") == ["create", "list", "delete", "rotate"]
    assert describe("user", "") == ["list", "create", "set", "delete", "passwd"]
    assert describe("user", "list", "") == []
    r = subprocess.run(["zsh", "-n", scripts["zsh"]], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_fish_completes_verbs_and_commands(scripts):
    require(shutil.which("fish"), "fish is not installed (deploy/install-deps.sh)")

    def complete(line):
        r = subprocess.run(["fish", "-N", "-c", f'source "{scripts["fish"]}"; complete -C "{line}"'],
                           capture_output=True, text=True, timeout=10, check=True)
        return [w.split("\t")[0] for w in r.stdout.splitlines()]
    assert complete("husk ") == sorted(help_verbs())
    assert complete("husk dep") == ["deployment"]
    assert complete("husk --host x volume ") == ["delete", "inspect", "list"]
    assert complete("husk user pa") == ["passwd"]
    assert complete("husk user passwd ") == []
    # Descriptions with quotes survive fish's quoting.
    r = subprocess.run(["fish", "-N", "-c", f'source "{scripts["fish"]}"; complete -C "husk token rot"'],
                       capture_output=True, text=True, timeout=10, check=True)
    assert r.stdout.strip() == "rotate\treplace a token's value"
