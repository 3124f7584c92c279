"""Job logs: progress only in the log; warnings and user errors on the console too."""

import pytest

from polyneuron import PolyneuronError
from polyneuron.logs import script_log


def test_warnings_reach_the_console_and_the_log(tmp_path, capsys):
    path = tmp_path / "job.log"
    with script_log(str(path)) as log:
        log.info("10 probes")
        log.warning("en-fr.txt: 2 malformed line(s) (skipped)")
    console = capsys.readouterr().err
    assert "polyneuron warning: en-fr.txt: 2 malformed line(s) (skipped)" in console
    assert "10 probes" not in console
    text = path.read_text()
    assert "10 probes" in text and "malformed" in text


def test_a_user_error_is_one_line_on_the_console(tmp_path, capsys):
    with pytest.raises(SystemExit), script_log(str(tmp_path / "job.log")):
        raise PolyneuronError("config key languages: unknown language code(s) 'xx'")
    assert capsys.readouterr().err == (
        "polyneuron error: config key languages: unknown language code(s) 'xx'\n"
    )
