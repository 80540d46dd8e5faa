"""Analysis of recorded videos and photo collections on top of :class:`fer_hybrid.inference.Analyzer`:
long tables on disk (:mod:`.tables`), emotion timelines (:mod:`.timeline`), per-track and per-folder
summaries with contact sheets (:mod:`.summary`), and many inputs in one resumable batch, in-process or on
Dask distributed (:mod:`.batch`, the engine of ``python -m fer_hybrid.analyze``)."""
from .batch import BatchResult, Settings, make_settings, run_batch
from .summary import photo_summary, video_summary
from .tables import read_table, write_table
from .timeline import save_timeline, timeline_figure

__all__ = ["BatchResult", "Settings", "make_settings", "run_batch", "photo_summary", "video_summary", "read_table",
           "write_table", "save_timeline", "timeline_figure"]
