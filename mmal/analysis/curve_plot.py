"""The report's figure: metric against labeled cost and labeled images.

One curve per selector, the mean over its seeds, with the min-max band of
the metric over seeds, as in the paper's figures. Detection gets two
panels (against boxes and against images); classification, whose cost is
images, one. Each curve's line has the SVG id ``curve:<selector>``.
"""
from typing import Dict, List

from .al_curves import MeanCurve


def plot_curves(curves: Dict[str, MeanCurve],
                unit: str,
                metric: str,
                out_files: List[str],
                title: str = '') -> 'object':
    """Draw the curves and save them to each of ``out_files`` (.png,
    .svg).

    Args:
        curves (dict[str, MeanCurve]): Selector -> mean curve.
        unit (str): The cost unit (``'boxes'`` or ``'images'``).
        metric (str): The metric's label.
        out_files (list[str]): Files to write; the suffix picks the format.
        title (str): Figure title.

    Returns:
        matplotlib.figure.Figure: The figure.
    """
    from matplotlib.figure import Figure  # no pyplot: no global state

    axes_x = [('cost', f'labeled {unit}')]
    if unit != 'images':
        axes_x.append(('images', 'labeled images'))
    fig = Figure(figsize=(5.2 * len(axes_x), 3.8))
    axes = [fig.subplots(1, len(axes_x), squeeze=False)[0]]
    seeds = sorted({len(c.seeds) for c in curves.values()})
    for ax, (attr, xlabel) in zip(axes[0], axes_x):
        for curve in curves.values():
            x = getattr(curve, attr)
            label = f'{curve.name} ({_seeds(len(curve.seeds))})'
            (line, ) = ax.plot(
                x, curve.metric, marker='o', markersize=3, label=label)
            line.set_gid(f'curve:{curve.name}')
            ax.fill_between(
                x,
                curve.metric_min,
                curve.metric_max,
                color=line.get_color(),
                alpha=0.18,
                linewidth=0)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f'{metric} (%)')
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8, loc='lower right')
    band = 'mean over seeds; band: min to max'
    if len(seeds) == 1:
        band = f'mean over {_seeds(seeds[0])}; band: min to max'
    fig.suptitle(f'{title}\n{band}' if title else band, fontsize=9)
    fig.tight_layout()
    for path in out_files:
        fig.savefig(path, dpi=90)
    return fig


def _seeds(n: int) -> str:
    return f'{n} seed' + ('' if n == 1 else 's')
