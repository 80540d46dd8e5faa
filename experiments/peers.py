"""Peer measurement: the published FER2013 mini-Xception (oarriaga) on our FER2013-5 split.

    python experiments/peers.py [--data PATH] [--peer ../shared/models/peers/oarriaga/fer2013_mini_XCEPTION.102-0.66.hdf5]

The peer predicts 7 FER2013 classes from 64x64 gray; we keep the 5 study columns and renormalise.
Its training split is not documented as ours, so its train/val numbers may include data it saw.
When the peer file is absent the script says so and exits 0 without a report. The peer is never shipped.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PEER = ROOT.parent / "shared" / "models" / "peers" / "oarriaga" / "fer2013_mini_XCEPTION.102-0.66.hdf5"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=None, help="FER2013 folder/.tar.gz/csv (default: $FER2013_PATH)")
    p.add_argument("--peer", default=str(DEFAULT_PEER))
    p.add_argument("--out", default=str(ROOT / "experiments" / "reports"))
    args = p.parse_args(argv)

    peer_path = Path(args.peer)
    if not peer_path.exists():
        print(f"peer model not found at {peer_path}; nothing to measure (no report written)")
        return 0

    from fer_hybrid.data import DataError, load_fer2013
    from fer_hybrid.evaluate import file_sha256
    from fer_hybrid.peers import PeerXception
    from fer_hybrid.predictors import ArtifactError
    from fer_hybrid.reports import report_predictor

    try:
        data = load_fer2013(args.data)
        peer = PeerXception(peer_path, name="peer-" + peer_path.stem.replace(".", "-"))
    except (FileNotFoundError, DataError, ArtifactError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    path, report = report_predictor(
        peer, data, Path(args.out) / peer.name, kind="peer", weights="published (oarriaga/face_classification)",
        params=int(peer.model.count_params()), seconds_per_epoch=None,
        artifact={"path": peer_path.name, "sha256": file_sha256(peer_path), "bytes": peer_path.stat().st_size},
        backbone="mini-Xception (64x64x1, 7 classes -> 5 study columns renormalised)",
        notes="peer model, MIT licence, not ours and not shipped; trained by its authors on FER2013 Training")
    print(f"{peer.name}: test accuracy {report['metrics']['test']['accuracy']:.4f} -> {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
