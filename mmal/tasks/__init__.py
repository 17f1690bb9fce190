"""Tasks: what differs between detection and classification, in one place.

A task says how the pool's annotations are loaded (and hidden for
unlabeled images), which metric a cycle reports and in which unit, what a
sample costs to annotate, and which built-in demo data it generates. The
driver and the selectors ask the task; they never test for one.
"""
from .base_task import BaseTask
from .classification_task import ClassificationTask
from .detection_task import DetectionTask

__all__ = ['BaseTask', 'DetectionTask', 'ClassificationTask']
