from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data() -> Path:
    return DATA


@pytest.fixture(scope="session")
def labeller():
    """The shipped default model, loaded once for the whole run."""
    from supervise_nlp.classify import NoteLabeller
    from supervise_nlp.modelio import load_model

    return NoteLabeller(load_model())


@pytest.fixture(scope="session")
def mini_model_dir(tmp_path_factory, data) -> Path:
    """A model trained by the CLI on the six-note test corpus (fast; used for plumbing tests)."""
    from click.testing import CliRunner

    from supervise_nlp.cli import main

    out = tmp_path_factory.mktemp("model") / "mini"
    result = CliRunner().invoke(main, ["train", str(data / "mini_corpus.jsonl"), "-o", str(out), "-q"])
    assert result.exit_code == 0, result.output
    return out
