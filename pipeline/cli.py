"""`performer`: the command-line face of the pipeline.

Every command turns a failure into one line on stderr (pipeline.failures: exit status 1, 130 on
Ctrl-C, 143 on SIGTERM; the traceback only with --debug), checks its output paths before the work
starts (pipeline.outputs) and never leaves a half-written output behind.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn

import typer

from pipeline.errors import PipelineError
from pipeline.render_job import RENDER_THREADS

app = typer.Typer(
    help="Deep Performer: score-to-audio performance synthesis pipeline.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(__import__("pipeline.flows.cli", fromlist=["flow_app"]).flow_app, name="flow")  # Prefect flows
app.add_typer(__import__("pipeline.registry_cli", fromlist=["models_app"]).models_app, name="models")  # MLflow registry


def _fail(err: Exception) -> NoReturn:
    from pipeline.failures import report

    report(err)
    raise typer.Exit(1)


TEMPO_HELP = (
    "opening tempo in quarter notes per minute (default: the score's); the score's tempo changes are "
    "all kept, the whole tempo map scaled by TEMPO / the score's first tempo"
)


def _check_tempo(tempo: float | None) -> None:
    """``--tempo``: None (the score's) or a positive, finite number of quarter notes per minute."""
    if tempo is not None and not 0 < tempo < float("inf"):
        raise PipelineError(f"--tempo must be a positive number of quarter notes per minute, not {tempo:g}")


@app.command()
def stage(
    name: str = typer.Argument(..., help="a stage of dvc.yaml, e.g. align or train_ablation@no_encoder"),
    params: Path = typer.Option(Path("params.yaml"), help="parameter file"),
    nproc: str = typer.Option(
        "", help="run a training stage under torchrun with this many processes per node (N or gpu)"
    ),
) -> None:
    """Run one pipeline stage's dvc.yaml command directly (what `dvc repro` runs, without DVC's bookkeeping:
    afterwards `dvc commit -f NAME` records its outputs)."""
    import shlex
    import subprocess

    from pipeline.flows.dag import read_dag

    try:
        dag = read_dag(".")
        if name not in dag.stages:
            raise PipelineError(f"unknown stage {name!r} (known: {', '.join(dag.stages)})", "dvc.yaml")
        node = dag.stages[name]
    except PipelineError as err:
        _fail(err)
    for cmd in node.cmd:
        words = shlex.split(cmd)
        if nproc:
            if words[:2] != ["python", "-m"]:
                _fail(PipelineError(f"stage {name} does not run `python -m MODULE`, so not under torchrun", "dvc.yaml"))
            words = [
                str(Path(sys.executable).parent / "torchrun"),
                "--standalone",
                f"--nproc_per_node={nproc}",
                *words[1:],
            ]
        elif words[0] == "python":
            words[0] = sys.executable  # the project's interpreter, whatever `python` is on PATH
        code = subprocess.call([*words, "--params", str(params)], cwd=node.wdir)
        if code:
            raise typer.Exit(code)


@app.command()
def performers() -> None:
    """List the built-in virtual performers and how they play."""
    from pipeline.performers import PERFORMERS

    for p in PERFORMERS.values():
        typer.echo(
            f"{p.name:8s} tempo x{p.tempo_factor:.2f}  rubato {p.rubato_depth:.2f}/{p.phrase_quarters:g}q  "
            f"jitter {p.jitter_ms:g} ms  legato {p.legato:.2f}  rit {p.final_ritardando:.2f}  "
            f"vibrato {p.vibrato_rate:g} Hz {p.vibrato_cents:g} c  "
            f"{p.instrument.soundfont}#{p.instrument.program}"
        )


@app.command()
def perform(
    score: Path = typer.Argument(..., help="MIDI (.mid/.midi) or MusicXML (.xml/.musicxml/.mxl) file"),
    output: Path = typer.Option(..., "-o", "--output", help="audio file to write (.wav or .flac)"),
    performer: str = typer.Option("aurora", help="virtual performer (see `performer performers`)"),
    sample_rate: int | None = typer.Option(
        None, help="output sample rate (default: the parameter file's resample.sample_rate, the pipeline's audio rate)"
    ),
    seed: int = typer.Option(0, help="random seed of the performance"),
    tempo: float | None = typer.Option(None, help=TEMPO_HELP),
    truth: Path | None = typer.Option(
        None,
        help="also write each note's performed onset,offset in seconds with its note_id, pitch, score onset and "
        "duration in beats (CSV)",
    ),
    midi: Path | None = typer.Option(
        None, "--midi", help="also write the performance as a MIDI file (notes at their performed times)"
    ),
    params: Path = typer.Option(Path("params.yaml"), help="parameter file (for the default sample rate)"),
) -> None:
    """Play a score with a virtual performer through FluidSynth (how the built-in corpus is made)."""
    from pipeline.config import load_params
    from pipeline.outputs import AUDIO_SUFFIXES, all_or_nothing, check_output
    from pipeline.performers import get_performer, warn_out_of_range
    from pipeline.rendering import render_to_file
    from pipeline.scores import MIDI_SUFFIXES, read_score, write_note_timing, write_performance_midi

    try:
        check_output(output, AUDIO_SUFFIXES)
        if truth is not None:
            check_output(truth, (".csv",), "--truth")
        if midi is not None:
            check_output(midi, tuple(sorted(MIDI_SUFFIXES)), "--midi")
        if sample_rate is None:
            sample_rate = load_params(params).resample.sample_rate
        if sample_rate <= 0:
            raise PipelineError(f"--sample-rate must be > 0, not {sample_rate}")
        _check_tempo(tempo)
        player = get_performer(performer)
        notes = read_score(score)
        warn_out_of_range(notes, player.instrument.program, f"{player.name}'s instrument")
        if tempo is not None:
            notes.tempo_qpm = tempo  # the opening tempo: the tempo map scales with it
        perf = player.perform(notes, seed=seed)
        with all_or_nothing([output, truth, midi]):
            # streamed block by block (memory does not grow with the score), a progress bar on stderr;
            # the same file as write_audio(output, render(...)) (pipeline.rendering.render_to_file)
            render_to_file(perf, player.instrument, sample_rate, output, desc="perform")
            if truth is not None:
                write_note_timing(truth, notes, perf.onset, perf.offset)
            if midi is not None:
                write_performance_midi(
                    midi,
                    perf.pitch,
                    perf.onset,
                    perf.offset,
                    perf.velocity,
                    performer=player.name,
                    program=player.instrument.program,
                    title=score.stem,
                )
    except PipelineError as err:
        _fail(err)
    typer.echo(f"wrote {output} ({len(notes)} notes, {perf.offset.max():.1f} s)")


@app.command()
def align(
    score: Path = typer.Argument(..., help="MIDI or MusicXML score"),
    audio: Path = typer.Argument(..., help="recording (wav/flac/mp3/opus/ogg/m4a)"),
    output: Path = typer.Option(..., "-o", "--output", help="CSV to write: onset,offset (s), pitch, score ticks"),
    params: Path = typer.Option(Path("params.yaml"), help="parameter file for the align settings"),
    program: int | None = typer.Option(
        None, min=0, max=127, help="General MIDI program of the recording's instrument (default: params align.program)"
    ),
) -> None:
    """Align a score to a recording (the `align` stage's method, for one pair of files)."""
    import pandas as pd

    from pipeline.alignment.align import align_score_to_audio
    from pipeline.audio import load_audio
    from pipeline.config import load_params
    from pipeline.io import atomic_path
    from pipeline.outputs import check_output
    from pipeline.scores import read_score

    try:
        check_output(output, (".csv",))
        settings = load_params(params)
        config = settings.align
        notes = read_score(score)
        signal, rate = load_audio(audio, sample_rate=settings.resample.sample_rate)
        try:
            result = align_score_to_audio(notes, signal, rate, config, program=-1 if program is None else program)
        except PipelineError as err:
            raise err if err.path is not None else PipelineError(str(err), audio) from err
        frame = pd.DataFrame(
            {
                "onset": result.onset.round(4),
                "offset": result.offset.round(4),
                "pitch": notes.pitch,
                "score_onset": notes.onset,
                "score_duration": notes.duration,
                "confidence": result.note_confidence.round(3),
            }
        )
        with atomic_path(output) as tmp:
            frame.to_csv(tmp, index=False)
    except PipelineError as err:
        _fail(err)
    trusted = (
        ""
        if result.confidence >= config.min_confidence
        else f"; under align.min_confidence {config.min_confidence:g}: check the pairing"
    )
    typer.echo(f"wrote {output} ({len(notes)} notes, alignment confidence {result.confidence:.2f}{trusted})")


@app.command()
def mel(
    audio: Path = typer.Argument(..., help="recording (any common format; resampled to the mel recipe's rate)"),
    output: Path = typer.Option(..., "-o", "--output", help=".npy file for the (n_mels, frames) log-mel"),
    plot: Path | None = typer.Option(None, help="also draw it to this PNG"),
    params: Path = typer.Option(Path("params.yaml"), help="parameter file: its mel group is the recipe"),
) -> None:
    """Compute the project's log-mel spectrogram of one recording."""
    import numpy as np

    from pipeline.audio import load_audio
    from pipeline.config import load_mel
    from pipeline.io import atomic_path
    from pipeline.mel import log_mel_in_chunks
    from pipeline.outputs import all_or_nothing, check_output
    from pipeline.plots import plot_mel_with_notes

    try:
        check_output(output, (".npy",))
        if plot is not None:
            check_output(plot, (".png",), "--plot")
        config = load_mel(params)
        signal, _ = load_audio(audio, sample_rate=config.sample_rate)
        if len(signal) < config.win_length:
            raise PipelineError(
                f"too short for one mel frame ({len(signal)} samples at {config.sample_rate} Hz; "
                f"a frame needs {config.win_length})",
                audio,
            )
        spec = log_mel_in_chunks(signal, config, progress="mel")  # log_mel's values, bounded memory, a bar
        with all_or_nothing([output, plot]):
            with atomic_path(output) as tmp:
                with open(tmp, "wb") as fh:
                    np.save(fh, spec)
            if plot is not None:
                plot_mel_with_notes(plot, spec, None, config, title=audio.name)
    except PipelineError as err:
        _fail(err)
    typer.echo(f"wrote {output} {spec.shape}")


@app.command()
def render(
    scores: list[Path] = typer.Argument(
        ..., help="MIDI (.mid/.midi) or MusicXML (.xml/.musicxml/.mxl) files: one with -o, any number with --out-dir"
    ),
    output: Path | None = typer.Option(
        None, "-o", "--output", help="audio file to write for the one score (.wav or .flac, at the models' rate)"
    ),
    out_dir: Path | None = typer.Option(
        None,
        "--out-dir",
        help="folder to write each score's audio into, as <score name>.wav, in one process that loads the models "
        "once; every score is read before the models are loaded, each score's file is written whole or not at "
        "all, and a score that fails stops the command (the files of the scores before it stay)",
    ),
    performer: str | None = typer.Option(
        None,
        help="a performer the models were trained on (default: the first), or a blend of them that mixes "
        "both timing and timbre: NAME:WEIGHT,NAME:WEIGHT (e.g. aurora:0.7,bruno:0.3; a name alone weighs 1), "
        "weights finite and >= 0, normalised to sum 1",
    ),
    tempo: float | None = typer.Option(None, help=TEMPO_HELP),
    models: str = typer.Option(
        "models",
        "--models",
        "--model",
        help="folder of the training stages' outputs, or "
        "MLflow model URIs (models:/deep-performer@ALIAS, models:/deep-performer-{name}@ALIAS, "
        "models:/@ALIAS, or alignment,synthesis,hifigan)",
    ),
    device: str = typer.Option(
        "auto",
        help="auto (CUDA when present; the ONNX backend runs on the CPU), cpu or cuda (which renders with torch)",
    ),
    backend: str = typer.Option(
        "auto",
        help="onnx: the models' ONNX export (<models>/onnx, `dvc repro export_onnx`) on onnxruntime, without "
        "importing torch; torch: the models themselves; auto: onnx where the export is there and current for a "
        'models folder, else torch (docs/benchmarks.md, "Render command")',
    ),
    mel_plot: Path | None = typer.Option(
        None, "--mel-plot", help="also draw the predicted mel with the notes (PNG; with -o)"
    ),
    timing: Path | None = typer.Option(
        None,
        help="also write each note's performed onset,offset in seconds with its note_id, pitch, score onset and "
        "duration in beats (CSV; with -o)",
    ),
    midi: Path | None = typer.Option(
        None,
        "--midi",
        help="also write the predicted performance as a MIDI file (notes at their performed times and lengths, "
        "the score's velocities, the performer in the track name; with -o)",
    ),
    loudness: str = typer.Option(
        "calibrated",
        help="calibrated: the model's level plus the dB it falls short of the recordings on unseen pieces "
        "(measured when it was trained; the piece keeps its own loudness); performer: the whole piece at the "
        "level of the performer's training recordings; model: the synthesis model's own level, several dB "
        'quieter (docs/benchmarks.md, "Output level")',
    ),
    threads: int = typer.Option(
        RENDER_THREADS,
        min=1,
        help='CPU threads for the models (docs/benchmarks.md, "Render command": one is as fast on an idle '
        "machine and far faster on a busy one)",
    ),
    params: Path = typer.Option(
        Path("params.yaml"),
        help="parameter file: the mel recipe the models were trained on (a composite registered model carries its own)",
    ),
) -> None:
    """Render scores to audio through the three trained models (alignment -> synthesis -> vocoder)."""
    import time

    started = time.perf_counter()
    from pipeline.render_job import (
        RenderRequest,
        check_loudness,
        choose_backend,
        load_bundle,
        read_request_score,
        render_files,
    )

    try:  # the outputs first, before the seconds of loading models: a bad path fails at once
        outputs = _render_outputs(scores, output, out_dir, mel_plot, timing, midi)
        _check_tempo(tempo)
        check_loudness(loudness)
        requests = [
            RenderRequest(
                score=str(score),
                output=str(audio),
                performer=performer,
                tempo=tempo,
                loudness=loudness,
                mel_plot=None if mel_plot is None else str(mel_plot),
                timing=None if timing is None else str(timing),
                midi=None if midi is None else str(midi),
            )
            for score, audio in zip(scores, outputs)
        ]
        onnx_folder = choose_backend(backend, models, device, params)
        notes = [read_request_score(request) for request in requests]
        bundle = load_bundle(models, device, params, threads, onnx_folder)
        for request, score_notes in zip(requests, notes):
            try:
                done = render_files(bundle, request, score_notes)
            except PipelineError as err:
                if len(requests) == 1 or err.path is not None:
                    raise
                raise PipelineError(str(err), request.score) from err
            typer.echo(
                f"wrote {request.output} ({done.notes} notes, {done.seconds:.1f} s, performer {done.performer}, "
                f"{time.perf_counter() - started:.1f} s)"
            )
    except PipelineError as err:
        _fail(err)


def _render_outputs(
    scores: list[Path],
    output: Path | None,
    out_dir: Path | None,
    mel_plot: Path | None,
    timing: Path | None,
    midi: Path | None = None,
) -> list[Path]:
    """The audio file of each score (``-o`` for one, ``--out-dir``/<score name>.wav for any number),
    every output checked (:func:`pipeline.outputs.check_output`)."""
    from pipeline.outputs import AUDIO_SUFFIXES, check_output
    from pipeline.scores import MIDI_SUFFIXES

    if (output is None) == (out_dir is None):
        raise PipelineError(
            "give -o FILE (one score) or --out-dir FOLDER (any number of scores)"
            if output is None
            else "give -o FILE or --out-dir FOLDER, not both"
        )
    if output is not None:
        if len(scores) > 1:
            raise PipelineError(f"-o names one audio file: for {len(scores)} scores give --out-dir FOLDER", output)
        outputs = [check_output(output, AUDIO_SUFFIXES)]
    else:
        assert out_dir is not None
        if out_dir.exists() and not out_dir.is_dir():
            raise PipelineError("--out-dir is a file, not a folder", out_dir)
        for flag, given in (("--mel-plot", mel_plot), ("--timing", timing), ("--midi", midi)):
            if given is not None:
                raise PipelineError(f"{flag} names one file: give it with -o FILE and one score, not --out-dir", given)
        outputs = [out_dir / f"{score.stem}.wav" for score in scores]
        first: dict[Path, Path] = {}
        for score, audio in zip(scores, outputs):
            if audio in first:
                raise PipelineError(f"{first[audio]} and {score} would both be written to {audio}", score)
            first[audio] = score
        for audio in outputs:
            check_output(audio, AUDIO_SUFFIXES)
    if mel_plot is not None:
        check_output(mel_plot, (".png",), "--mel-plot")
    if timing is not None:
        check_output(timing, (".csv",), "--timing")
    if midi is not None:
        check_output(midi, tuple(sorted(MIDI_SUFFIXES)), "--midi")
    return outputs


def main() -> None:
    """The `performer` entry point: every failure is one line and its exit status (pipeline.failures)."""
    from pipeline.failures import EXIT_INTERRUPTED, reported_failures, take_debug_flag

    args = take_debug_flag(sys.argv[1:])
    with reported_failures():
        try:
            code = app(args=args, prog_name="performer", standalone_mode=False)
        except typer.Abort:
            raise KeyboardInterrupt from None
        except Exception as err:
            # usage errors (click's, or typer's own copy of click): their message and status 2
            if callable(getattr(err, "show", None)) and isinstance(getattr(err, "exit_code", None), int):
                err.show()  # type: ignore[attr-defined]
                sys.exit(err.exit_code)  # type: ignore[attr-defined]
            raise
        if code == EXIT_INTERRUPTED:  # typer turns Ctrl-C into a silent exit status 130 (the clean-up has run)
            raise KeyboardInterrupt
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
