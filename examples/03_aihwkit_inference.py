"""03 — your own torch model on the emulated device with aihwkit.

    python examples/03_aihwkit_inference.py [OUT_DIR]

Emulates and extracts a small HfOxSy/HfS2 record, exports its aihwkit
configurations (``memdrift export DEVICE.json --aihwkit CFG.pt`` does the same),
then uses only torch and aihwkit: convert a model of your own, program it,
let it drift for a day, and take one in-memory training step with AnalogSGD.
"""

import sys
from pathlib import Path

import torch
from aihwkit.nn.conversion import convert_to_analog
from aihwkit.optim import AnalogSGD

import memdrift
from memdrift.mapping.aihwkit_bridge import save_configs
from memdrift.mapping.extract import extract_datasets

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples")
out.mkdir(parents=True, exist_ok=True)
# each protocol's settings are the fields of its own class (PdCyclingOptions, RetentionOptions), checked when made
cycling = memdrift.characterise("hfoxsy-hfs2", "pd-cycling", devices=16, cycles=5).load()
retention = memdrift.characterise("hfoxsy-hfs2", "retention", devices=4, temperatures_k=(300.0, 350.0), times=9,
                                  noise=False).load()
record = extract_datasets([("cycling", cycling), ("retention", retention)], levels=(32,))
save_configs(memdrift.to_aihwkit(record), out / "03_aihwkit.pt")

# From here on: a user's script needs only the file.
cfg = torch.load(out / "03_aihwkit.pt", weights_only=False)
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
x = torch.rand(128, 64)
with torch.no_grad():
    digital = model(x)
analog = convert_to_analog(model, cfg["inference"])
analog.eval()
analog.program_analog_weights()
with torch.no_grad():
    for t_s in (1.0, 86400.0):
        analog.drift_analog_weights(t_s)
        err = (analog(x) - digital).norm() / digital.norm()
        print(f"t = {t_s:>7.0f} s after programming: output error vs digital {100 * float(err):.1f} %")

layer = convert_to_analog(torch.nn.Sequential(torch.nn.Linear(64, 10)), cfg["training"])
opt = AnalogSGD(layer.parameters(), lr=0.1)
opt.regroup_param_groups(layer)
loss = torch.nn.functional.cross_entropy(layer(x), torch.randint(0, 10, (128,)))
loss.backward()
opt.step()
print(f"one AnalogSGD step on the record's pulsed device (loss {loss.item():.3f}); wrote {out / '03_aihwkit.pt'}")
