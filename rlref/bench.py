"""`python -m rlref bench`: a grid of training runs (algorithms x envs x seeds) in parallel
processes, then one results table and learning-curve figures (rlref/benchreport.py).

    python -m rlref bench --algos ppo trpo --envs Hopper-v5 HalfCheetah-v5 --seeds 3 --out bench/mujoco

Each (algo, env, seed) is one `python -m rlref train ALGO --env ENV --seed SEED [--total-steps S]
[--set ...] --out DIR/runs/ALGO-ENV-sSEED --quiet` child, exactly what a user would type, so the
algorithm's per-env PRESETS apply as on the command line. At most --jobs children run at once (one
per core by default), each with one BLAS thread. Their stderr goes to DIR/logs/NAME.stderr.txt.

Running the same command again costs nothing for what is finished: a run directory with
summary.json is reused, one with a checkpoint but no summary.json (stopped, or killed) is continued
with `train --resume`, one with neither (it died before its first checkpoint) is started again. A
run directory whose config.json differs from what this bench would run is refused
(BenchMismatchError) before anything runs: runs made with other settings are never mixed into a
table. A child that fails does not stop the others; its stderr's last line is reported, the table
marks it, and the command exits with 1.

The scripts that run many seeds (scripts/calibrate.py, ablation_ppo.py, compare_commits.py,
bench_dppo.py) use the same machinery: plan_run for each run (under mpiexec, or with an older
checkout's rlref, when asked), then summaries, which runs them with run_grid and reads their
summary.json.
"""
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time

import rlref
from rlref.errors import BenchMismatchError, ConfigError, require_int

POLL_S = 0.5                                   # how often the children's progress.csv are read
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or "mpiexec"   # the MPICH wheel's


def run_name(algo, env, seed):
    """ALGO-ENV-sSEED, one folder name on every system: a custom env's module:Class separator and a
    namespace's / (ALE/Pong-v5) become _."""
    return f"{algo}-{env.replace(':', '_').replace('/', '_')}-s{seed}"


def planned_config(algo, env, seed, steps, sets):
    """The config.json `train` would write for this run (rlref/cli.py's resolve_config)."""
    from rlref.cli import resolve_config
    try:
        config = resolve_config(algo, env, seed, steps, sets)
    except ConfigError as err:
        raise ConfigError(f"{algo} on {env}: {err}") from None
    return json.loads(json.dumps({"algorithm": algo, **config.to_dict()}))     # as JSON reads it back


def plan_run(algo, env, seed, run_dir, steps=None, sets=(), workers=None, tree=None):
    """One run: `train ALGO --env ENV --seed SEED [--total-steps STEPS] [--set ...] --out run_dir`,
    under `mpiexec -n workers` when workers is given, with the rlref of the folder `tree` (an older
    checkout: scripts/compare_commits.py) instead of this one when given. A dict: name, algo, env,
    seed, dir, steps, sets, workers, tree, config (what train would write; None for another tree's
    code), total (the step budget), action ("reuse", "resume", "restart" or "new") and differences
    (how run_dir's config.json differs from config: empty when they match)."""
    config = planned_config(algo, env, seed, steps, sets) if tree is None else None
    run = {"name": os.path.basename(os.path.normpath(run_dir)), "algo": algo, "env": env, "seed": seed,
           "dir": run_dir, "steps": steps, "sets": list(sets), "workers": workers, "tree": tree, "config": config,
           "total": config["total_steps"] if config else steps or 0}
    run["action"], run["differences"] = existing_run(run_dir, config) if config else ("new", [])
    return run


def plan_grid(algos, envs, seeds, first_seed, steps, sets, out):
    """One plan_run per run of the grid, in table order, into out/runs/ALGO-ENV-sSEED. Refuses
    (BenchMismatchError) a run directory holding a run with other settings, for every such
    directory at once, before anything runs."""
    for flag, names in (("--algos", list(algos)), ("--envs", list(envs))):
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:                             # two children would train into one run directory at once
            raise ConfigError(f"{flag} names {', '.join(twice)} more than once; give each once")
    require_int("--seeds", seeds, 1)
    require_int("--first-seed", first_seed, 0)
    if steps is not None:
        require_int("--steps", steps, 1)
    grid = [plan_run(algo, env, seed, os.path.join(out, "runs", run_name(algo, env, seed)), steps, sets)
            for algo in algos for env in envs for seed in range(first_seed, first_seed + seeds)]
    mismatched = [f"{run['dir']} ({'; '.join(run['differences'])})" for run in grid if run["differences"]]
    if mismatched:
        raise BenchMismatchError(
            f"{len(mismatched)} run director{'y holds a run' if len(mismatched) == 1 else 'ies hold runs'} made "
            f"with other settings than this bench would use: {', '.join(mismatched)}; nothing was run. "
            f"Repeat the options that made them, write this grid elsewhere (--out DIR), or remove those "
            f"directories")
    return grid


def existing_run(run_dir, expected):
    """(action, differences): what to do with run_dir, and how its config.json differs from
    expected ("key: A there, B here"); differences is empty when the settings match."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.isfile(path):
        return "new", []
    with open(path) as f:
        found = json.load(f)
    from rlref.config import format_value                      # values as --set writes them
    differences = [f"{key}: {format_value(found.get(key, 'absent'))} there, {format_value(expected.get(key, 'absent'))} here"
                   for key in sorted(set(found) | set(expected)) if found.get(key) != expected.get(key)]
    if os.path.isfile(os.path.join(run_dir, "summary.json")):
        return "reuse", differences
    if any(os.path.isdir(os.path.join(run_dir, d)) for d in ("checkpoint", "checkpoint.old")):
        return "resume", differences
    return "restart", differences             # died before its first checkpoint: nothing to keep


def child_command(run):
    """The `[mpiexec -n W] python -m rlref train ...` of one run (a new one, a resumed one, or a restart)."""
    base = [MPIEXEC, "-n", str(run["workers"])] if run["workers"] else []
    base += [sys.executable, "-m", "rlref", "train"]
    if run["action"] == "resume":
        return base + ["--resume", run["dir"], "--quiet"]
    cmd = base + [run["algo"], "--env", run["env"], "--seed", str(run["seed"])]
    cmd += ["--total-steps", str(run["steps"])] if run["steps"] is not None else []
    for item in run["sets"]:
        cmd += ["--set", item]
    cmd += ["--out", run["dir"], "--quiet"]
    return cmd + (["--overwrite"] if run["action"] == "restart" else [])


def child_environ(tree=None):
    """This environment with one BLAS thread per child and this checkout's rlref (or tree's) first
    on the path. The child also runs in that folder: `python -m` puts the working folder first."""
    package_root = tree or os.path.dirname(os.path.dirname(os.path.abspath(rlref.__file__)))
    path = os.environ.get("PYTHONPATH")
    return rlref.one_blas_thread(dict(os.environ, PYTHONPATH=package_root + (os.pathsep + path if path else "")))


def steps_done(run_dir):
    """env_steps of the last row of run_dir/progress.csv (0 before the first row)."""
    from rlref.rundir import read_progress
    try:
        steps = read_progress(run_dir, last_row_only=True).get("env_steps", [])
    except FileNotFoundError:
        return 0
    return int(steps[-1]) if steps else 0


def last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""


STOPPED = (128 + signal.SIGINT, 128 + signal.SIGTERM)     # a child that saved its checkpoint and stopped


class _Stop(Exception):
    """SIGTERM (or SIGINT) reached the bench itself: stop the children the same way."""

    def __init__(self, signum):
        super().__init__(signum)
        self.signum = signum


def _raise_stop(signum, frame):
    raise _Stop(signum)


def _outcome(proc, err, run):
    """What became of one finished child: its exit code and, unless it succeeded, its stderr's last line."""
    err.close()
    error = None if proc.returncode == 0 else last_line(err.name) or f"exit code {proc.returncode}"
    return {"returncode": proc.returncode, "error": error, "action": run["action"],
            "stopped": proc.returncode in STOPPED}


def run_grid(grid, jobs, log_dir, poll_s=POLL_S):
    """Run every run whose action is not "reuse", at most `jobs` at once, with one tqdm bar over
    the grid's env steps. SIGINT or SIGTERM to the bench is passed on to the running children
    (they save a checkpoint and stop) and no new run starts. Returns ({name: outcome}, stopped)."""
    from tqdm import tqdm
    os.makedirs(log_dir, exist_ok=True)
    todo = [run for run in grid if run["action"] != "reuse"]
    outcomes = {run["name"]: {"returncode": 0, "error": None, "action": "reuse", "stopped": False}
                for run in grid if run["action"] == "reuse"}
    total = sum(run["total"] for run in grid)
    bar = tqdm(total=total, unit="step", unit_scale=True, dynamic_ncols=True, disable=not sys.stderr.isatty(),
               desc=f"bench: {len(grid)} runs")
    running = {}

    def advance():                                        # the bar shows the grid's steps so far
        done = {run["name"]: min(steps_done(run["dir"]), run["total"]) for run in grid}
        failed = [name for name, o in outcomes.items() if o["returncode"] != 0]
        bar.total = total - sum(run["total"] - done[run["name"]] for run in grid if run["name"] in failed)
        bar.update(sum(done.values()) - bar.n)            # a failed run's remaining steps never come
        bar.set_postfix(done=len(outcomes) - len(failed), running=len(running), failed=len(failed), refresh=True)

    previous = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        while todo or running:
            while todo and len(running) < jobs:
                run = todo.pop(0)
                err = open(os.path.join(log_dir, run["name"] + ".stderr.txt"), "w")
                running[run["name"]] = (subprocess.Popen(child_command(run), stdout=subprocess.DEVNULL, stderr=err,
                                                         env=child_environ(run["tree"]), cwd=run["tree"]), err, run)
            for name, (proc, err, run) in list(running.items()):
                if proc.poll() is not None:
                    outcomes[name] = _outcome(proc, err, run)
                    del running[name]
                    if outcomes[name]["error"]:
                        bar.write(f"{name} {'stopped' if outcomes[name]['stopped'] else 'failed'}: "
                                  f"{outcomes[name]['error']}", file=sys.stderr)
            advance()
            if running:
                time.sleep(poll_s)
    except (KeyboardInterrupt, _Stop) as stop:
        signum = stop.signum if isinstance(stop, _Stop) else signal.SIGINT
        for proc, err, run in running.values():
            if proc.poll() is None:
                proc.send_signal(signum)      # the child finishes its iteration, saves and exits
        for name, (proc, err, run) in running.items():
            proc.wait()
            outcomes[name] = _outcome(proc, err, run)
    finally:
        signal.signal(signal.SIGTERM, previous)
        bar.close()
    return outcomes, any(o["stopped"] for o in outcomes.values())


def summaries(grid, jobs, log_dir):
    """Run the grid (run_grid) and return every run's summary.json, in grid order: what the
    scripts that run many seeds read. RuntimeError naming the runs that failed or stopped."""
    outcomes, stopped = run_grid(grid, jobs, log_dir)
    failed = [f"{name}: {o['error']}" for name, o in outcomes.items() if o["returncode"] != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} of {len(grid)} runs did not finish (logs in {log_dir}): " + "; ".join(failed))
    out = []
    for run in grid:
        with open(os.path.join(run["dir"], "summary.json")) as f:
            out.append(json.load(f))
    return out


def command_line(args):
    """The bench command these arguments make, as one shell line (the report states it)."""
    parts = ["python", "-m", "rlref", "bench"]
    if args.algos:
        parts += ["--algos", *args.algos]
    if args.envs:
        parts += ["--envs", *args.envs]
    if args.seeds is not None:
        parts += ["--seeds", str(args.seeds), "--first-seed", str(args.first_seed)]
    parts += ["--steps", str(args.steps)] if args.steps is not None else []
    parts += ["--jobs", str(args.jobs)] if args.jobs is not None else []
    for item in args.set:
        parts += ["--set", item]
    return shlex.join(parts + ["--out", args.out] + (["--report-only"] if args.report_only else []))


def bench(args):
    """The bench command (args from rlref/cli.py): plan, run, report. Returns the exit code:
    0 when every run finished, 1 when one failed, 130 when runs were stopped (SIGINT, SIGTERM)."""
    from rlref import benchreport
    out, command = args.out, command_line(args)
    if args.report_only:
        text, ok = benchreport.write_report(out, command)
        print(text)
        return 0 if ok else 1
    missing = [flag for flag, value in (("--algos", args.algos), ("--envs", args.envs), ("--seeds", args.seeds))
               if not value]
    if missing:
        raise ConfigError(f"bench needs {', '.join(missing)} (or --report-only to rebuild the report of {out})")
    jobs = require_int("--jobs", args.jobs, 1) if args.jobs is not None else (os.cpu_count() or 1)
    grid = plan_grid(args.algos, args.envs, args.seeds, args.first_seed, args.steps, args.set, out)
    plan = benchreport.read_plan(out)
    plan["runs"] = {**plan.get("runs", {}), **{run["name"]: {k: run[k] for k in ("algo", "env", "seed")} for run in grid}}
    plan["command"] = command
    benchreport.write_plan(out, plan)
    outcomes, stopped = run_grid(grid, jobs, os.path.join(out, "logs"))
    plan["outcomes"] = {**plan.get("outcomes", {}), **outcomes}
    benchreport.write_plan(out, plan)
    text, ok = benchreport.write_report(out, command, names=[run["name"] for run in grid])
    print(text)
    if stopped:
        print(f"stopped: the stopped runs saved their checkpoints; run the same command again to continue "
              f"them (finished runs are reused): {command}", file=sys.stderr)
        return 130
    return 0 if ok else 1
