"""Reading finished active-learning runs back: curves, savings, plots."""
from .al_curves import (MeanCurve, Saving, SavingResult, cost_to_reach,
                        mean_curve, mean_curves, savings)
from .al_report import Report, find_reference, make_report
from .al_runs import ReportError, RunCurve, RunSet, load_run, load_runs

__all__ = [
    'MeanCurve', 'Saving', 'SavingResult', 'cost_to_reach', 'mean_curve',
    'mean_curves', 'savings', 'Report', 'find_reference', 'make_report',
    'ReportError', 'RunCurve', 'RunSet', 'load_run', 'load_runs'
]
