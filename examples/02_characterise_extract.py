"""02 — characterise cells on the virtual probe station and extract one device record.

    python examples/02_characterise_extract.py [OUT_DIR]

Potentiation/depression cycling and a retention bake at three temperatures on the
same preset, then one extraction record from both files (the command-line
equivalent is ``memdrift extract cycling.nc retention.nc -o device.json``).
"""

import sys
from pathlib import Path

import memdrift
from memdrift.emulator.protocols import write_characterisation
from memdrift.mapping.extract import extract_datasets, save_record
from memdrift.mapping.measured import read_measured

out = Path(sys.argv[1] if len(sys.argv) > 1 else "out/examples")
# each protocol's settings are the fields of its own class (PdCyclingOptions, RetentionOptions), checked when made
files = {
    "cycling": memdrift.characterise("hfoxsy-hfs2", "pd-cycling", devices=16, cycles=5),
    # noise off isolates the Arrhenius dissolution from the hops' random walk
    "retention": memdrift.characterise("hfoxsy-hfs2", "retention", devices=4, temperatures_k=(300.0, 325.0, 350.0),
                                       times=9, noise=False),
}
paths = {k: write_characterisation(ds, out / f"02_{k}.nc", progress=False) for k, ds in files.items()}

record = extract_datasets([(str(p), read_measured(p)) for p in paths.values()], levels=(32,))
save_record(record, out / "02_device.json")
print(f"states {record['states']}, bin width {record['bin_width'] * 1e6:.1f} µS, "
      f"state σ {record['state_sigma'] * 1e6:.1f} µS, differential bins {record['differential_bins']}")
drift = record["drift"]
print(f"drift activation energy {drift['activation_energy_eV']:.3f} ± {drift['activation_energy_eV_stderr']:.1g} eV; "
      f"power-law ν {drift['nu']} (R² of the power law: {drift['nu_r2']:.2f})")
for note in record["notes"]:
    print("note:", note)
print(f"wrote {out / '02_device.json'}")
