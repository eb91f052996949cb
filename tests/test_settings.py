"""A setting declared once on its field reaches both commands' options, the fingerprint, the resume policy and the share
key."""

import re
from dataclasses import dataclass, replace

import pytest

import h2t_nb.cli as cli
import h2t_nb.config as config
from h2t_nb.config import TrainConfig, setting
from h2t_nb.presets import PRESETS
from h2t_nb.runs import trained_fields


@dataclass
class WithKnob(TrainConfig):
    knob: float = setting(0.5, 'a made-up knob that changes what a run learns', flag=True, fingerprint='always')
    speed: int = setting(
        1, 'a made-up knob that changes only how fast it runs', flag=True, fingerprint='no', on_resume='apply'
    )


@pytest.fixture
def knobs(monkeypatch):
    "Both commands read the configuration class the declarations come from: here one with two more fields."
    monkeypatch.setattr(config, 'TrainConfig', WithKnob)
    monkeypatch.setattr(cli, 'TrainConfig', WithKnob)


def options(command):
    return {o for a in cli.command_parser(command, "cmd")._actions for o in a.option_strings if o.startswith("--")} - {
        "--help"
    }


def test_a_new_field_reaches_both_commands_help(knobs):
    train, table = (cli.command_parser(f, 'cmd').format_help() for f in (cli.h2t_train, cli.h2t_table))
    for text in (train, table):
        assert re.search(r'--knob KNOB\s+a made-up knob that changes what a run learns', text), text
        assert '--speed SPEED' in text


def test_a_new_field_enters_the_fingerprint_as_declared():
    cfg = WithKnob(**{k: getattr(PRESETS['offline'], k) for k in PRESETS['offline'].__dataclass_fields__})
    assert trained_fields(cfg, 1)['knob'] == 0.5 and 'speed' not in trained_fields(cfg, 1)
    assert trained_fields(replace(cfg, knob=0.7), 2)['knob'] == 0.7
    assert 'knob' not in trained_fields(PRESETS['offline'], 1)


def test_a_new_field_follows_its_resume_policy(knobs, tmp_path):
    with pytest.raises(ValueError, match='--knob would change what it trains'):
        cli.h2t_train(resume=str(tmp_path), knob=0.7)
    with pytest.raises(ValueError, match='--knob would change what it trains'):
        cli.h2t_table(resume=str(tmp_path), knob=0.7)
    assert 'speed' in config.resume_fields('apply') and 'knob' in config.resume_fields('refuse')
    runtime, _ = cli._on_resume('h2t-table', dict(speed=4), {})
    assert runtime == dict(speed=4)  # applied to the folder's plan, like --device


def test_both_commands_take_the_same_options_with_the_same_defaults():
    train, table = options(cli.h2t_train), options(cli.h2t_table)
    assert train - table == {'--preset', '--stages'} and table - train == {'--rows'}
    defaults = lambda f: {a.dest: a.default for a in cli.command_parser(f, 'cmd')._actions}
    a, b = defaults(cli.h2t_train), defaults(cli.h2t_table)
    shared = set(a) & set(b) - {'help'}
    assert len(shared) > 25 and {k: a[k] for k in shared} == {k: b[k] for k in shared}
    plan = cli.table_plan('digits100_lt_if100', rows=['dr'])
    assert plan.seeds == [PRESETS['digits100_lt_if100_stage1'].seed]  # h2t-train's default too: the preset's seed
