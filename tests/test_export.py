"""memdrift export DEVICE.json --aihwkit CFG.pt: aihwkit-native configurations a user's own script loads."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("aihwkit", reason="aihwkit not installed: bash scripts/install-aihwkit.sh")

from memdrift.errors import MemdriftError  # noqa: E402
from memdrift.experiments.cli import main  # noqa: E402
from memdrift.mapping import aihwkit_bridge as bridge  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from test_aihwkit_bridge import hfoxsy_record as _paper_record  # noqa: E402


def hfoxsy_record() -> dict:
    return dict(_paper_record(), notes=[])

#: A user's script: torch and aihwkit only; the file brings the device.
USER_SCRIPT = r'''
import json, sys
import torch
from aihwkit.nn.conversion import convert_to_analog
from aihwkit.optim import AnalogSGD

before = sorted(m for m in sys.modules if m.startswith("memdrift"))
cfg = torch.load(sys.argv[1], weights_only=False)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
x = torch.rand(256, 16)
with torch.no_grad():
    digital = net(x)
analog = convert_to_analog(net, cfg["inference"])
analog.eval()
analog.program_analog_weights()
with torch.no_grad():
    programmed = analog(x)
    analog.drift_analog_weights(3.15e7)
    drifted = analog(x)

def corr(a, b):
    a, b = a.flatten() - a.mean(), b.flatten() - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))

layer = torch.nn.Sequential(torch.nn.Linear(16, 4))
trained = convert_to_analog(layer, cfg["training"])
opt = AnalogSGD(trained.parameters(), lr=0.5)
opt.regroup_param_groups(trained)
w0 = trained[0].get_weights()[0].clone()
loss = torch.nn.functional.cross_entropy(trained(x), torch.randint(0, 4, (256,)))
loss.backward()
opt.step()
print(json.dumps({"imported_before_load": before, "corr_programmed": corr(programmed, digital),
                  "corr_drifted": corr(drifted, digital),
                  "weight_change": float((trained[0].get_weights()[0] - w0).abs().max()),
                  "types": [type(cfg["inference"]).__name__, type(cfg["training"]).__name__]}))
'''


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("export")
    (d / "device.json").write_text(json.dumps(hfoxsy_record()))
    assert main(["export", str(d / "device.json"), "--aihwkit", str(d / "cfg.pt")]) == 0
    return d / "cfg.pt"


def test_a_users_script_converts_programs_drifts_and_trains_with_the_file(exported, tmp_path):
    script = tmp_path / "user.py"
    script.write_text(USER_SCRIPT)
    res = subprocess.run([sys.executable, str(script), str(exported)], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["imported_before_load"] == []
    assert out["types"] == ["TorchInferenceRPUConfig", "SingleRPUConfig"]
    # 16 levels and a ~1.5 % program error keep the analog network close to the digital one
    assert out["corr_programmed"] > 0.95 and out["corr_drifted"] > 0.9
    assert out["weight_change"] > 0


def test_file_holds_the_record_and_the_noise_model_fields(exported):
    cfg = bridge.load_configs(exported)
    assert cfg["record"] == hfoxsy_record()
    noise = cfg["inference"].noise_model
    assert isinstance(noise, bridge.StudentTProgramNoise)
    assert noise.levels == 16 and noise.nu == pytest.approx(0.0049)
    assert noise.activation_energy_ev == pytest.approx(0.6)
    assert noise.g_min == pytest.approx(50.0) and noise.g_max == pytest.approx(50.0 + 15 * 81.077)
    assert float(noise.df[0]) == pytest.approx(5.0)
    assert cfg["aihwkit_version"] and cfg["torch_version"].startswith("2.13.0")


def test_bad_inputs_end_in_one_line(tmp_path, capsys):
    (tmp_path / "device.json").write_text(json.dumps(hfoxsy_record()))
    assert main(["export", str(tmp_path / "device.json"), "--aihwkit", str(tmp_path / "cfg.json")]) == 2
    assert "ending in .pt" in capsys.readouterr().err
    bad = dict(hfoxsy_record(), g_max=None)
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    assert main(["export", str(tmp_path / "bad.json"), "--aihwkit", str(tmp_path / "cfg.pt")]) == 2
    assert "g_max" in capsys.readouterr().err and not (tmp_path / "cfg.pt").exists()
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(MemdriftError, match="not a memdrift export"):
        bridge.load_configs(tmp_path / "junk.pt")
