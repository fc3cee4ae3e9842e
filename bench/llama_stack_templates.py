"""`stackray check` over Llama Stack 0.2.12's own distribution configs.

    python bench/llama_stack_templates.py --repo PATH/TO/llama-stack.git [--ref v0.2.12]
                                          [--json OUT.json] [--verbose]

Reads every ``llama_stack/templates/*/run*.yaml`` of the given git checkout at `--ref`
(``git show``, nothing is copied into this repository), sets the environment variables
each one names, and runs ``stackray check --skip-host-checks`` on it in this process.
Prints one line per file (ok, or the first line of the error) and a tally of the
reasons files are refused, so a change to config compatibility shows up as a count.

Most templates also name APIs this version does not serve (datasetio, eval, scoring,
post_training), which stops the check at `apis`. So each file is checked twice: as it
is, and with those APIs set aside (removed from `apis`, with their providers and the
`datasets` / `scoring_fns` / `benchmarks` they would register), which shows whether the
rest of the file (providers, stores, env syntax, fields) is accepted.

Variables are set as a user starting that distribution would set them: every variable
without a default, every conditional (`${env.ENABLE_X+...}`) switched on, and every
variable whose default is empty (keys, URLs); a non-empty default is left as it is.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TEMPLATE_DIR = "llama_stack/templates"
_REFERENCE = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)(:=|:\+|:|\+)?([^}]*)\}")


def list_templates(repo: Path, ref: str) -> list[str]:
    out = subprocess.run(
        ["git", "-C", str(repo), "ls-tree", "-r", "--name-only", ref, TEMPLATE_DIR],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return sorted(
        p for p in out.splitlines() if re.fullmatch(rf"{TEMPLATE_DIR}/[^/]+/run[^/]*\.yaml", p)
    )


def read_template(repo: Path, ref: str, path: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), "show", f"{ref}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


def value_for(name: str, scratch: Path) -> str:
    """A plausible value for a variable, from its name."""
    upper = name.upper()
    if upper.startswith("ENABLE_"):
        return "1"
    if upper.endswith(("_URL", "_ENDPOINT")) or upper == "URL":
        return "http://localhost:8080/v1" if "VLLM" in upper else "http://localhost:8080"
    if upper.endswith("_PORT"):
        return "5432"
    if upper.endswith(("API_KEY", "_TOKEN", "_PASSWORD", "_SECRET")):
        return "test-secret"
    if upper == "SAFETY_MODEL":
        return "meta-llama/Llama-Guard-3-1B"
    if upper.endswith("_MODEL"):
        return "meta-llama/Llama-3.2-3B-Instruct"
    if upper.endswith(("_DIR", "_PATH")):
        return str(scratch / name.lower())
    if upper.endswith("_HOST"):
        return "localhost"
    return "test"


def environment_for(text: str, scratch: Path) -> dict[str, str]:
    """The variables a user sets to start the config in `text`."""
    env: dict[str, str] = {}
    for name, op, arg in _REFERENCE.findall(text):
        if op in (None, "") or op in ("+", ":+") or arg == "":
            env[name] = value_for(name, scratch)
    return env


@contextlib.contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_one(config_path: Path, env: dict[str, str]) -> tuple[bool, str]:
    """Run `stackray check --skip-host-checks` on one file: (passed, first message line)."""
    from stackray.cli import main

    out, err = io.StringIO(), io.StringIO()
    with (
        patched_environ(env),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            code = main(["check", "--skip-host-checks", str(config_path)])
        except Exception as e:  # a crash is a finding too, not the end of the run
            return False, f"crashed: {type(e).__name__}: {e}"
    lines = [ln for ln in (err.getvalue() + out.getvalue()).splitlines() if ln.strip()]
    if code == 0:
        return True, lines[-1] if lines else "ok"
    detail = [ln for ln in lines if not ln.startswith("stackray: invalid config")]
    return False, (detail[0] if detail else lines[0] if lines else f"exit {code}")


def unserved_apis() -> set[str]:
    from stackray.api.datatypes import Api
    from stackray.runtime.provider_config import GATEWAY_APIS
    from stackray.runtime.routers import ROUTERS, owner

    return {a.value for a in Api if a not in GATEWAY_APIS and owner(a) not in ROUTERS}


def set_aside_unserved(text: str) -> str:
    """The config with the APIs this version does not serve removed."""
    import yaml

    data = yaml.safe_load(text)
    drop = unserved_apis()
    data["apis"] = [a for a in data.get("apis", []) if a not in drop]
    data["providers"] = {a: p for a, p in (data.get("providers") or {}).items() if a not in drop}
    for section, api in (
        ("datasets", "datasetio"),
        ("scoring_fns", "scoring"),
        ("benchmarks", "eval"),
    ):
        if api in drop:
            data.pop(section, None)
    return yaml.safe_dump(data, sort_keys=False)


def reason_of(message: str, source: str) -> str:
    """The message without the file name and the value, to tally alike errors."""
    text = message.replace(source, "<file>").replace("<file>: ", "")
    text = re.sub(r"\(got .*\)$", "", text).strip()
    text = re.sub(r"\[\d+\]", "[i]", text)
    text = re.sub(r" \((known|served): [^)]*\)?", "", text)
    return text


def run(repo: Path, ref: str, verbose: bool) -> dict:
    results = []
    with tempfile.TemporaryDirectory(prefix="stackray-templates-") as tmp:
        root = Path(tmp)
        for path in list_templates(repo, ref):
            text = read_template(repo, ref, path)
            name = path.removeprefix(f"{TEMPLATE_DIR}/")
            scratch = root / name.replace("/", "-").removesuffix(".yaml")
            scratch.mkdir(parents=True)
            env = environment_for(text, scratch)
            # Stores default under ~/.llama; point them at the scratch directory instead.
            env.setdefault("SQLITE_STORE_DIR", str(scratch / "store"))
            env["HOME"] = str(scratch / "home")
            config_path = scratch / "run.yaml"
            config_path.write_text(text)
            ok, message = check_one(config_path, env)
            aside_path = scratch / "run-served-apis.yaml"
            aside_path.write_text(set_aside_unserved(text))
            ok_aside, message_aside = check_one(aside_path, env)
            results.append(
                {
                    "template": name,
                    "passed": ok,
                    "message": message,
                    "reason": None if ok else reason_of(message, str(config_path)),
                    "passed_served_apis": ok_aside,
                    "message_served_apis": message_aside,
                    "reason_served_apis": (
                        None if ok_aside else reason_of(message_aside, str(aside_path))
                    ),
                }
            )
            mark = ("ok  " if ok else "FAIL") + " " + ("ok  " if ok_aside else "FAIL")
            shown = message_aside if verbose or not ok_aside else ""
            print(f"{mark} {name:<40} {reason_of(shown, str(aside_path))}", flush=True)
    passed = sum(r["passed"] for r in results)
    passed_aside = sum(r["passed_served_apis"] for r in results)
    print("(columns: as is, with unserved APIs set aside; the reason is the second's)")
    print()
    print(f"{passed} of {len(results)} Llama Stack {ref} template configs pass `stackray check`")
    print(
        f"{passed_aside} of {len(results)} pass with the APIs this version does not serve set aside"
    )
    for key, title in (("reason", "as is"), ("reason_served_apis", "unserved APIs set aside")):
        tally = Counter(r[key] for r in results if r[key] is not None)
        if tally:
            print(f"refused, {title} (first error of each file):")
            for reason, count in tally.most_common():
                print(f"  {count:>3}  {reason}")
    return {
        "ref": ref,
        "passed": passed,
        "passed_served_apis": passed_aside,
        "total": len(results),
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repo",
        type=Path,
        default=os.environ.get("LLAMA_STACK_REPO"),
        help="a git checkout (or bare repository) of llama-stack; default $LLAMA_STACK_REPO",
    )
    parser.add_argument("--ref", default="v0.2.12", help="tag or commit to read (v0.2.12)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--verbose", action="store_true", help="print the ok lines in full")
    args = parser.parse_args(argv)
    if args.repo is None:
        parser.error("--repo (or LLAMA_STACK_REPO) is required")
    data = run(args.repo, args.ref, args.verbose)
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
