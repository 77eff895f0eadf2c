"""The notebook's magics: ``%%shapley``, ``%shapley``, ``%shapley_cache``, ``%shapley_panel``.

Thin on purpose: a magic parses its line, reads the settings, builds a
:class:`~dvl_jupyter.runner.RunConfig`, hands it to the
:class:`~dvl_jupyter.runner.ValuationRunner`, stores the result and displays it. Everything
else (checking, running, recording, progress) lives in the runner and its callbacks, which the
panel and plain Python share.

Errors a user can fix (a missing variable, an unknown option or setting, a model or data of the
wrong type, any engine :class:`~dvl_jupyter.valuation.exceptions.DvlError`) are raised as
IPython's own ``UsageError``, which the shell shows as one short line instead of a traceback
through torch and joblib; a subclass would lose that short display. When the culprit is the
user's own code (a utility or scoring function that raises, a model whose fit fails: a
:class:`~dvl_jupyter.valuation.exceptions.UserCodeError`), the line names it and the step.
``--debug`` (or ``%config ShapleyMagics.debug = True``) re-raises the original error: for the
user's code, its own traceback, not the engine's; and a run under ``--debug`` stops at the
first failing fit instead of counting it (``catch_errors=False``). A run that fails midway
keeps its partial result in the ``-o`` variable, and says so.

Options are split as a shell would: quotes group (``--cache "my cache dir"``), and IPython
has already expanded ``{var}`` and ``$var`` in the line.

A kernel interrupt ends a run cleanly: the partial result is stored in the ``-o`` variable and
displayed, the cache keeps every evaluation, and the cell then ends with a one-line
``KeyboardInterrupt``, so that "Run all" stops there as it would for any interrupted cell.
"""

from __future__ import annotations

import ast
import difflib
import os
import shlex
from typing import Any

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments
from traitlets import Any as AnyTrait
from traitlets import Bool, Enum, TraitError, Unicode, validate
from traitlets.config import Configurable

from .config import RunConfig, check_output_name
from .display import SHOW_CHOICES, mimebundle
from .runner import ValuationRunner
from .valuation import NoTruncation
from .valuation.cachedir import DEFAULT_CACHE_DIR, CacheDirectory
from .valuation.ending import RunEnd
from .valuation.exceptions import DvlError, UserCodeError
from .valuation.utils import plural

__all__ = ["ShapleyMagics", "SETTINGS", "load", "unload"]

#: The names a ``%%shapley`` body may set; everything else it assigns is an error.
SETTINGS = ("model", "train", "test", "method", "scoring", "truncation", "stopping", "default",
            "range", "utility", "coupled_training")
BATCHED = {"auto": "auto", "on": True, "off": False}
_BODY = "<%%shapley body>"
#: The traits that are run settings, checked by RunConfig's table.
_RUN_SETTINGS = ("jobs", "backend", "scheduler", "seed")
_EXAMPLE = "model = model\ntrain, test = train, test\nstopping = MinUpdates(100)"


class RunInterrupted(KeyboardInterrupt):
    """The kernel's interrupt ended a run; shown as one line, the partial result is kept."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def _render_traceback_(self) -> list[str]:
        return [f"KeyboardInterrupt: {self.message}"]


class _UserError(Exception):
    """A mistake in the cell, with the original exception for ``--debug``."""

    def __init__(self, message: str, original: BaseException | None = None) -> None:
        super().__init__(message)
        self.original = original


class _Scratch(dict):  # type: ignore[type-arg]
    """The namespace a ``%%shapley`` body runs in: valuation names under the notebook's.

    A copy, so reading sees the notebook's variables and writing never changes them; it
    records what the body assigned (a module-level assignment calls ``__setitem__`` on a dict
    subclass), which is all the magic reads back.
    """

    def __init__(self, *layers: dict[str, Any]) -> None:
        super().__init__()
        for layer in layers:
            self.update(layer)
        self.assigned: dict[str, None] = {}

    def __setitem__(self, key: str, value: Any) -> None:
        self.assigned[key] = None
        super().__setitem__(key, value)


def _valuation_names() -> dict[str, Any]:
    from . import valuation

    return {name: getattr(valuation, name) for name in valuation.__all__}


def _number(text: str) -> int | str:
    """A line option's number; anything else goes on as text, for RunConfig's own message."""
    try:
        return int(text)
    except ValueError:
        return text


def _did_you_mean(name: str, candidates: Any) -> str:
    close = difflib.get_close_matches(name, [c for c in candidates if isinstance(c, str)], n=1)
    return f"; did you mean {close[0]!r}?" if close else "."


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 400 else text[:397] + "..."


def _bound_by_assignment(tree: ast.Module) -> list[tuple[str, int]]:
    """Names the body binds at its top level by assignment (not by import, def or class)."""
    found: list[tuple[str, int]] = []

    class Visitor(ast.NodeVisitor):
        def visit_Name(self, node: ast.Name) -> None:
            if isinstance(node.ctx, ast.Store):
                found.append((node.id, node.lineno))

        def _skip(self, node: ast.AST) -> None:
            """Own scopes: their names are not settings."""

        visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _skip
        visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _skip

    Visitor().visit(tree)
    return found


@magics_class
class ShapleyMagics(Magics, Configurable):
    """``%%shapley`` / ``%shapley`` (also ``%%valuation``): the values of a model's training
    points, by TMC-Shapley or another method.

    Defaults for the line options are set with ``%config``, e.g.
    ``%config ShapleyMagics.jobs = 2``.
    """

    # The run's settings are checked by RunConfig's table (one rule, one message, whether set
    # here, by a line option, in the panel or in plain Python), hence Any traits.
    jobs = AnyTrait(1, help="Parallel jobs (joblib n_jobs; -1 for all cores).").tag(config=True)
    backend = AnyTrait("loky", help="joblib backend: loky, threading, dask or ray."
                       ).tag(config=True)
    scheduler = AnyTrait(None, help="Dask scheduler address for --backend dask "
                                    "(tcp://host:port); None: the notebook's current "
                                    "distributed.Client.").tag(config=True)
    cache_dir = Unicode(DEFAULT_CACHE_DIR, allow_none=True,
                        help="Cache directory; empty or None for no cache.").tag(config=True)
    seed = AnyTrait(None, help="Seed of the permutations; None for a fresh one."
                    ).tag(config=True)
    show = Enum(SHOW_CHOICES, default_value="auto",
                help="What to display: auto (plot, grid, table), plot, grid, table or none."
                ).tag(config=True)
    batched = Enum(tuple(BATCHED), default_value="auto",
                   help="The fast path: auto, on (required) or off.").tag(config=True)
    progress = Bool(True, help="Show live progress.").tag(config=True)
    debug = Bool(False, help="Show full tracebacks instead of short errors.").tag(config=True)

    def __init__(self, shell: Any = None, **kwargs: Any) -> None:
        super().__init__(shell=shell, **kwargs)
        #: The runner of the last %%shapley run (e.g. to stop a background run).
        self.last_runner: ValuationRunner | None = None

    @validate(*_RUN_SETTINGS)
    def _check_run_setting(self, proposal: Any) -> Any:
        try:
            return RunConfig.check(proposal["trait"].name, proposal["value"])
        except DvlError as exc:
            raise TraitError(str(exc)) from None

    # -- %%shapley / %shapley ----------------------------------------------------------------
    @magic_arguments()
    @argument("names", nargs="*", metavar="MODEL TRAIN TEST",
              help="line form only: the notebook's model, training and test data")
    @argument("-o", "--out", metavar="NAME", help="variable that receives the ValuationResult")
    @argument("-j", "--jobs", type=_number, metavar="N",
              help="parallel jobs, -1 for all cores (default: %%config)")
    @argument("--backend", metavar="NAME", help="joblib backend: loky, threading, dask, ray")
    @argument("--scheduler", metavar="ADDRESS",
              help="dask scheduler, e.g. tcp://10.0.0.5:8786 (with --backend dask)")
    @argument("--cache", metavar="DIR", help="cache directory (default: .dvl_cache)")
    @argument("--no-cache", action="store_true", help="compute everything, store nothing")
    @argument("--cache-key", metavar="TEXT",
              help="any text mixed into the cache's key: change it to recompute everything "
                   "after a change the cache cannot see")
    @argument("--seed", type=_number, metavar="N", help="seed of the permutations")
    @argument("--no-progress", action="store_true", help="no live progress")
    @argument("--show", choices=SHOW_CHOICES, help="what to display when done")
    @argument("--batched", choices=tuple(BATCHED), help="the fast path: auto, on or off")
    @argument("--background", action="store_true",
              help="run in a thread and return at once; NAME is set when done")
    @argument("--debug", action="store_true",
              help="full tracebacks instead of short errors; a failing fit stops the run "
                   "(catch_errors=False)")
    @line_cell_magic
    def shapley(self, line: str, cell: str | None = None) -> None:
        """Value every training point: TMC-Shapley by default, or another ``method``.

        Cell form: the body is Python that sets ``model``, ``train``, ``test`` and optionally
        ``method`` (``"tmc"``, ``"knn"``, ``"data-oob"``, ``"banzhaf"``, ``"beta(4,1)"``,
        ``"loo"`` or a method object), ``scoring``, ``truncation``, ``stopping``,
        ``default``, ``range`` (or a ready ``utility``); it sees the notebook's variables and
        every name of ``dvl_jupyter.valuation``, and its assignments stay in the cell::

            %%shapley -o result --jobs 2
            model = model
            train, test = train, test
            truncation = RelativeTruncation(rtol=0.05, burn_in_fraction=0.3)
            stopping = MinUpdates(100)

        ``%%valuation`` is the same magic (it reads better for Data-OOB or KNN-Shapley).
        Line form: ``%shapley model train test -o result``.
        """
        args = self._parse(self.shapley, line)
        debug = args.debug or self.debug
        try:
            config = self._config(args, cell, debug)
            self._run(config, args)
        except _UserError as exc:
            if debug and exc.original is not None:
                raise exc.original from None
            raise UsageError(str(exc)) from None
        except DvlError as exc:
            if debug:
                raise
            raise UsageError(_short(exc)) from None

    #: The same magic under a name that fits every method.
    valuation = line_cell_magic("valuation")(shapley)

    def _parse(self, magic: Any, line: str) -> Any:
        """The options, split as a shell would (:func:`split_options`), with a did-you-mean
        for a misspelt option."""
        name = magic.__name__
        try:
            argv = split_options(line)
        except ValueError as exc:
            raise UsageError(
                f"%{name}: {exc} in the options; quote a value with spaces as a shell would, "
                'e.g. --cache "my cache dir"'
            ) from None
        try:
            return magic.parser.parse_args(argv)
        except UsageError as exc:
            message = str(exc)
            if message.startswith("unrecognized arguments:"):
                bad = message.split(":", 1)[1].split()[0]
                options = [o for a in magic.parser._actions for o in a.option_strings]
                raise UsageError(
                    f"%{name}: unknown option {bad}{_did_you_mean(bad, options)} "
                    f"(%{name}? lists the options)"
                ) from None
            raise UsageError(f"%{name}: {message} (%{name}? lists the options)") from None

    def _config(self, args: Any, cell: str | None, debug: bool = False) -> RunConfig:
        if args.out is not None:
            check_output_name(args.out)
        if cell is None:
            settings = self._line_settings(args.names)
        else:
            if args.names:
                raise _UserError(
                    f"%%shapley takes its settings from the cell body, not from the first line; "
                    f"remove {' '.join(args.names)!r} and set model, train and test in the body."
                )
            settings = self._body_settings(cell)
        cache: str | None = args.cache if args.cache is not None else self.cache_dir
        return RunConfig(
            **settings,
            jobs=args.jobs if args.jobs is not None else self.jobs,
            backend=args.backend if args.backend is not None else self.backend,
            scheduler=args.scheduler or self.scheduler,
            cache=None if args.no_cache or not cache else cache,
            seed=args.seed if args.seed is not None else self.seed,
            batched=BATCHED[args.batched or self.batched],
            catch_errors=not debug,  # --debug: the first failing fit stops, with its traceback
            cache_key=args.cache_key,
        )

    def _line_settings(self, names: list[str]) -> dict[str, Any]:
        if len(names) != 3:
            raise _UserError(
                f"%shapley needs three variables, MODEL TRAIN TEST (e.g. %shapley model train "
                f"test -o result); got {len(names)}.\nFor more settings use the cell form, "
                "%%shapley."
            )
        ns = self.shell.user_ns
        settings = {}
        for key, expr in zip(("model", "train", "test"), names, strict=True):
            try:
                settings[key] = eval(expr, ns)  # noqa: S307 - the user's own expression
            except NameError as exc:
                missing = exc.name or expr
                raise _UserError(
                    f"%shapley: no variable {missing!r} in the notebook"
                    f"{_did_you_mean(missing, ns)}",
                    exc,
                ) from None
            except Exception as exc:  # noqa: BLE001 - the user's expression
                raise _UserError(
                    f"%shapley: evaluating {expr!r} for {key} raised {type(exc).__name__}: "
                    f"{_one_line(exc)}",
                    exc,
                ) from None
        return settings

    def _body_settings(self, cell: str) -> dict[str, Any]:
        """Run the body in a scratch namespace and return the settings it assigned."""
        source = self.shell.transform_cell(cell)
        if not source.strip():
            raise _UserError(
                "the %%shapley cell is empty: set at least model, train and test, e.g.\n"
                + _EXAMPLE.replace("\n", "; ")
            )
        try:
            tree = ast.parse(source, _BODY)
        except SyntaxError as exc:
            raise _UserError(
                f"syntax error in the %%shapley body, line {exc.lineno}: {exc.msg}.", exc
            ) from None
        for name, lineno in _bound_by_assignment(tree):
            if name not in SETTINGS and not name.startswith("_"):
                raise _UserError(
                    f"unknown setting {name!r} (line {lineno} of the %%shapley body)"
                    f"{_did_you_mean(name, SETTINGS)}\nThe settings are {', '.join(SETTINGS)}; "
                    "name helper variables with a leading underscore."
                )
        ns = _Scratch(_valuation_names(), self.shell.user_ns)
        try:
            exec(compile(tree, _BODY, "exec"), ns)  # noqa: S102 - the user's own cell
        except NameError as exc:
            missing = exc.name or "?"
            raise _UserError(
                f"{missing!r} is not defined (line {_body_line(exc)} of the %%shapley body)"
                f"{_did_you_mean(missing, ns)}\nDefine it in the notebook first, or fix the name.",
                exc,
            ) from None
        except Exception as exc:  # noqa: BLE001 - the user's own code, reported in one line
            raise _UserError(
                f"line {_body_line(exc)} of the %%shapley body raised {type(exc).__name__}: "
                f"{_one_line(exc)}",
                exc,
            ) from None
        settings = {name: ns[name] for name in ns.assigned if name in SETTINGS}
        if "truncation" in settings and settings["truncation"] is None:
            settings["truncation"] = NoTruncation()  # "truncation = None": none at all
        return settings

    def _run(self, config: RunConfig, args: Any) -> None:
        show = args.show or self.show
        enabled = self.progress and not args.no_progress
        runner = ValuationRunner(config)
        self.last_runner = runner
        # The Stop button only works in the background: a foreground run blocks the kernel,
        # which then cannot receive the click (the kernel's interrupt is the way to stop).
        view = _progress_view(runner if args.background else None, enabled)
        if view is not None:
            runner.callbacks.append(view)
        try:
            runner.build()  # bad settings raise here, before anything is shown or started
        except BaseException:
            _close(view)
            raise
        if args.background:
            self._start_background(runner, args.out, show)
            return
        try:
            result = runner.run()  # blocks; an interrupt returns the partial result
        except DvlError as exc:
            raise _UserError(_short(exc) + self._keep_partial(runner, args.out), exc) from None
        if result is None:  # interrupted before the first value
            raise RunInterrupted("run interrupted before it started; nothing to keep.")
        self._deliver(result, args.out, show)
        if RunEnd.parse(result.meta.get("ended")) is RunEnd.INTERRUPTED:
            where = f"in {args.out!r}" if args.out else "not stored (use -o NAME)"
            kept = " and the cache keeps every evaluation" if config.cache is not None else ""
            done = int(result.meta.get("permutations") or 0)
            if done:
                raise RunInterrupted(
                    f"run interrupted after {plural(done, 'permutation')}; the partial result "
                    f"is {where}{kept}."
                )
            raise RunInterrupted(
                f"run interrupted before any permutation finished: no value was estimated yet"
                f"{kept.replace(' and', ';')}."
            )

    def _keep_partial(self, runner: ValuationRunner, out: str | None) -> str:
        """Store the partial result of a run that failed midway in ``out``; the words that
        say so ("" when there is nothing worth keeping)."""
        result = runner.result
        done = int((result.meta.get("permutations") or 0) if result is not None else 0)
        if result is None or not done:
            return ""
        if not out:
            return f" The {plural(done, 'permutation')} done are lost (use -o NAME to keep them)."
        self.shell.user_ns[out] = result
        return f" The partial result ({plural(done, 'permutation')}) is in {out!r}."

    def _deliver(self, result: Any, out: str | None, show: str) -> None:
        from IPython.display import display

        if out:
            self.shell.user_ns[out] = result
        bundle = mimebundle(result, show=show)
        if bundle:
            display(bundle, raw=True)

    def _start_background(self, runner: ValuationRunner, out: str | None, show: str) -> None:
        """Start the run in a thread; a placeholder output is replaced by the result."""
        from IPython.display import display

        target = f"`{out}` is set" if out else "the result is shown here"
        algorithm = runner.valuation.algorithm if runner.valuation is not None else "The run"
        handle = display(
            {"text/plain": f"{algorithm} is running in the background; {target} when it ends."},
            raw=True, display_id=True,
        )

        def on_done(result: Any, error: BaseException | None) -> None:
            if result is not None and out:
                self.shell.user_ns[out] = result
            if error is not None and not isinstance(error, KeyboardInterrupt):
                bundle = {"text/plain": f"{algorithm} failed: {type(error).__name__}: "
                                        f"{_one_line(error)}"}
            elif result is not None:
                bundle = mimebundle(result, show=show) or {
                    "text/plain": f"{algorithm} finished; the result is in `{out}`."}
            else:
                return
            if handle is not None:
                handle.update(bundle, raw=True)

        runner.start(on_done=on_done)

    # -- %shapley_cache ------------------------------------------------------------------------
    @magic_arguments()
    @argument("action", nargs="?", default="show", choices=("show", "load", "clear"),
              help="show (default): where, size and past runs; load RUN_ID -o NAME; clear")
    @argument("run_id", nargs="?", metavar="RUN_ID", help="with load: the run to reload")
    @argument("-o", "--out", metavar="NAME", help="with load: the variable to put it in")
    @argument("--cache", metavar="DIR", help="cache directory (default: ShapleyMagics.cache_dir)")
    @line_magic
    def shapley_cache(self, line: str) -> None:
        """Show the cache and its past runs, reload a run's result, or clear it all."""
        from IPython.display import display

        args = self._parse(self.shapley_cache, line)
        directory = CacheDirectory(args.cache or self.cache_dir or DEFAULT_CACHE_DIR)
        try:
            if args.action == "show":
                display(directory.report())
            elif args.action == "load":
                if not args.run_id or not args.out:
                    raise UsageError(
                        "usage: %shapley_cache load RUN_ID -o NAME (%shapley_cache lists the runs)"
                    )
                check_output_name(args.out)
                result = directory.runs.load_result(args.run_id)
                self.shell.user_ns[args.out] = result
                print(f"Loaded run {args.run_id} ({len(result)} points) into `{args.out}`.")
            else:
                values, runs = directory.clear()
                what = ("the damaged cache file (its values could not be counted)"
                        if values is None else plural(values, "cached value"))
                print(f"Cleared {directory.path}: {what} and {plural(runs, 'run')} removed.")
        except (DvlError, OSError) as exc:
            if self.debug:
                raise
            raise UsageError(f"%shapley_cache: {_one_line(exc)}") from None

    # -- %shapley_panel ------------------------------------------------------------------------
    @line_magic
    def shapley_panel(self, line: str) -> Any:
        """Open the widget panel over the notebook's variables (``dvl_jupyter.panel()``)."""
        from .widget_panel import ShapleyPanel

        return ShapleyPanel(self.shell.user_ns)


def split_options(line: str) -> list[str]:
    """A magic's options as a shell splits them: quotes group and are removed
    (``--cache "my cache dir"`` is one value), backslashes escape (not on Windows, where
    they separate a path). IPython's own ``parse_argstring`` keeps the quotes in the value.
    Raises ``ValueError`` for an unclosed quote."""
    if os.name != "nt":
        return shlex.split(line, posix=True)
    return [_unquote(word) for word in shlex.split(line, posix=False)]


def _unquote(word: str) -> str:
    if len(word) >= 2 and word[0] == word[-1] and word[0] in "\"'":
        return word[1:-1]
    return word


def _short(exc: BaseException) -> str:
    """An engine error in one line; for the user's own code, how to see its traceback."""
    text = _one_line(exc)
    if isinstance(exc, UserCodeError) and (exc.user_traceback or exc.original is not None):
        text = text.rstrip(".") + ". --debug shows its traceback."
    return text


def _body_line(exc: BaseException) -> int | str:
    """The line of the body an exception came from (its innermost frame in the body)."""
    tb = exc.__traceback__
    line: int | str = "?"
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == _BODY:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _progress_view(runner: ValuationRunner | None, enabled: bool) -> Any:
    """The progress view that fits the front end (:func:`.progress.progress_callback`)."""
    from .progress import progress_callback

    return progress_callback(runner, enabled=enabled) if enabled else None


def _close(view: Any) -> None:
    close = getattr(view, "close", None)
    if callable(close):
        close()


def load(ip: Any) -> ShapleyMagics:
    """Register the magics with a shell, once; returns the (new or existing) instance."""
    for c in ip.configurables:
        if isinstance(c, ShapleyMagics):
            return c
    _drop_refused_config(ip)
    magics = ShapleyMagics(shell=ip)
    ip.register_magics(magics)
    return magics


def _drop_refused_config(ip: Any) -> None:
    """Forget ``%config ShapleyMagics.<name> = <value>`` entries that the traits refuse.

    ``%config`` stores a value in the shell's config before the trait checks it, so a refused
    value (``jobs = 0``) would stay there and make every later ``%load_ext`` fail. It was
    refused with its message when it was set; here it is dropped, with one line saying so.
    """
    section = ip.config.get("ShapleyMagics") if hasattr(ip.config, "get") else None
    if not section:
        return
    for name in [n for n in section if n in _RUN_SETTINGS]:
        try:
            RunConfig.check(name, section[name])
        except DvlError as exc:
            del section[name]
            print(f"%config ShapleyMagics.{name} ignored: {exc}")

def unload(ip: Any) -> None:
    """Remove the magics, their registry entry and their ``%config`` entry from a shell."""
    mine = [c for c in ip.configurables if isinstance(c, ShapleyMagics)]
    for m in mine:
        ip.configurables.remove(m)
    manager = ip.magics_manager
    for kind in ("line", "cell"):
        table = manager.magics[kind]
        for name in [n for n, f in table.items() if getattr(f, "__self__", None) in mine]:
            del table[name]
    for key in [k for k, v in dict.items(manager.registry) if v in mine]:
        dict.pop(manager.registry, key)
