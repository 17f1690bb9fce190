"""The documentation's links, paths and commands hold.

For README.md and every ``docs/**/*.md``:

* every relative link and image (``[text](path)``, ``[text](path#anchor)``,
  ``[text](#anchor)``) names an existing file, relative to the Markdown
  file, and its anchor is a heading of the target (GitHub's slugs);
* every ``configs/....py`` and ``tools/....py`` / ``.sh`` path named in the
  text (code blocks included) exists in the repository, except the
  example names a page makes itself (``USER_MADE``);
* every config that a shell command of a ``bash`` / ``shell`` block runs
  (``tools/al_train.py``, ``tools/dist_al_train.sh``,
  ``tools/slurm_al_train.sh``, the report and benchmark tools) parses
  with ``mmengine.Config.fromfile``.

One test per file and check, so a failure names the page; its message
lists every broken link, path or config of that page.
"""
import copy
import functools
import glob
import os.path as osp
import re
import unicodedata

import pytest

from conftest import REPO

DOCS = ['README.md'] + sorted(
    osp.relpath(path, REPO) for path in glob.glob(
        osp.join(REPO, 'docs', '**', '*.md'), recursive=True))

# Names that the documentation uses for files the reader makes, or for
# files of other projects; they are not in this repository.
USER_MADE = {
    # docs/en/user_guides/annotation_mode.md: the reader's annotation-mode
    # config, shown there as a python block ("# configs/my_isal_fcos.py")
    'configs/my_isal_fcos.py',
    # docs/en/advanced_guides/add_selector.md: the config of the example
    # selector, shown there as a python block ("# configs/fewest_fcos_voc.py")
    'configs/fewest_fcos_voc.py',
    # docs/en/user_guides/annotation_mode.md and docs/en/selectors.md:
    # mmdet's / mmpretrain's own training and test scripts
    'tools/train.py',
    'tools/test.py',
    # docs/en/get_started.md: a config of the reader's outside the
    # repository whose base is mmal::isal_fcos_shapes.py (a python block)
    '/elsewhere/my_isal_fcos.py',
}

FENCE = re.compile(r'^\s*(`{3,}|~{3,})\s*([\w+-]*)')
LINK = re.compile(r'!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)')
CODE_SPAN = re.compile(r'(`+)(.+?)\1', re.S)
HEADING = re.compile(r'^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$')
REPO_PATH = re.compile(r'(?<![\w./-])((?:configs/[\w./{},-]*?\.py)'
                       r'|(?:tools/[\w./{},-]*?\.(?:py|sh)))(?![\w-])')
SHELL_LANGS = {'bash', 'shell', 'sh', 'console'}
RUNNERS = ('tools/al_train.py', 'tools/dist_al_train.sh',
           'tools/slurm_al_train.sh', 'tools/analysis_tools/',
           'tools/benchmarks/')
CONFIG_RUNNERS = RUNNERS[:3]


@functools.lru_cache(maxsize=None)
def _read(rel):
    """(prose, code blocks) of a Markdown file: the prose with fenced
    blocks blanked out, the blocks as (language, text)."""
    with open(osp.join(REPO, rel), encoding='utf-8') as f:
        lines = f.read().split('\n')
    prose, blocks, fence, lang, body = [], [], None, '', []
    for line in lines:
        found = FENCE.match(line)
        if fence is None:
            if found:
                fence, lang, body = found.group(1), found.group(2), []
                prose.append('')
            else:
                prose.append(line)
        elif (found and found.group(1)[0] == fence[0]
              and len(found.group(1)) >= len(fence)
              and line.strip() == found.group(1)):
            blocks.append((lang.lower(), '\n'.join(body)))
            fence = None
            prose.append('')
        else:
            body.append(line)
            prose.append('')
    assert fence is None, f'{rel}: a code block is not closed'
    return '\n'.join(prose), tuple(blocks)


def slug(heading):
    """GitHub's anchor of a heading: the text without Markdown, lowercase,
    without punctuation but ``-`` and ``_``, spaces to ``-``."""
    text = re.sub(r'\[([^\]]*)\]\([^)]*\)', r'\1', heading)
    text = text.replace('`', '').lower()
    kept = ''.join(c for c in text
                   if c in ' -' or unicodedata.category(c)[0] in 'LMN'
                   or unicodedata.category(c) == 'Pc')
    return kept.replace(' ', '-')


@functools.lru_cache(maxsize=None)
def anchors(rel):
    found, seen = set(), {}
    for line in _read(rel)[0].split('\n'):
        heading = HEADING.match(line)
        if heading:
            base = slug(heading.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f'{base}-{count}')
    return frozenset(found)


def expand_braces(text):
    """Shell brace expansion: ``a{b,c}d`` -> ``abd``, ``acd``."""
    found = re.search(r'\{([^{}]*,[^{}]*)\}', text)
    if not found:
        return [text]
    head, tail = text[:found.start()], text[found.end():]
    return [
        path for part in found.group(1).split(',')
        for path in expand_braces(head + part + tail)
    ]


def named_paths(text):
    return [
        path for match in REPO_PATH.findall(text)
        for path in expand_braces(match)
    ]


def shell_commands(rel):
    """The commands of a page's shell blocks, continuation lines joined and
    comments removed."""
    for lang, body in _read(rel)[1]:
        if lang not in SHELL_LANGS:
            continue
        for line in body.replace('\\\n', ' ').split('\n'):
            line = re.sub(r'(^|\s)#.*$', '', line).strip()
            if line:
                yield line


@functools.lru_cache(maxsize=None)
def parse_error(config):
    """None if the config parses, else the error."""
    from mmengine.config import Config, utils

    import mmal  # noqa: F401  (registers mmal's modules, as al_train.py)

    # An ``mmdet::`` base makes mmengine parse mmdet's metafiles again for
    # every config (~0.3 s each); they do not change during the test.
    metainfo = getattr(utils, '_get_cfg_metainfo', None)
    if metainfo is not None:
        utils._get_cfg_metainfo = _cached_metainfo(metainfo)
    try:
        Config.fromfile(osp.join(REPO, config))
    except Exception as error:  # noqa: BLE001  (reported by the test)
        return f'{type(error).__name__}: {error}'
    finally:
        if metainfo is not None:
            utils._get_cfg_metainfo = metainfo
    return None


_METAINFO = {}


def _cached_metainfo(metainfo):

    def cached(package_path, cfg_path):
        key = (package_path, cfg_path)
        if key not in _METAINFO:
            _METAINFO[key] = metainfo(package_path, cfg_path)
        return copy.deepcopy(_METAINFO[key])

    return cached


def test_every_doc_is_found():
    assert 'docs/en/index.md' in DOCS
    assert len(DOCS) > 10
    index = _read('docs/en/index.md')[0]
    linked = {
        osp.normpath(osp.join('docs/en',
                              target.split('#')[0]))
        for target in LINK.findall(CODE_SPAN.sub('', index))
    }
    assert set(DOCS) - {'docs/en/index.md'} <= linked, (
        'docs/en/index.md does not link ' +
        ', '.join(sorted(set(DOCS) - linked - {'docs/en/index.md'})))


@pytest.mark.parametrize('rel', DOCS)
def test_links_resolve(rel):
    prose = CODE_SPAN.sub('', _read(rel)[0])
    broken = []
    for target in LINK.findall(prose):
        if re.match(r'[a-z][a-z0-9+.-]*:', target, re.I):
            continue  # https:, mailto: ...
        path, _, anchor = target.partition('#')
        dest = (
            rel if not path else osp.normpath(
                osp.join(osp.dirname(rel), path)))
        if not osp.exists(osp.join(REPO, dest)):
            broken.append(f'{target}: no file {dest}')
        elif anchor and dest.endswith('.md') and anchor not in anchors(dest):
            broken.append(f'{target}: no heading #{anchor} in {dest}')
    assert not broken, f'{rel}: ' + '; '.join(broken)


@pytest.mark.parametrize('rel', DOCS)
def test_named_paths_exist(rel):
    with open(osp.join(REPO, rel), encoding='utf-8') as f:
        text = f.read()
    missing = sorted({
        path
        for path in named_paths(text)
        if path not in USER_MADE and not osp.exists(osp.join(REPO, path))
    })
    assert not missing, f'{rel} names missing files: ' + ', '.join(missing)


@pytest.mark.parametrize('rel', DOCS)
def test_configs_of_commands_parse(rel):
    failed = []
    for command in shell_commands(rel):
        if not any(runner in command for runner in RUNNERS):
            continue
        configs = [
            path for path in named_paths(command)
            if path.startswith('configs/')
        ]
        if any(runner in command for runner in CONFIG_RUNNERS):
            assert configs or any(name in command for name in USER_MADE), \
                f'{rel}: no config in {command!r}'
        for config in configs:
            if config in USER_MADE:
                continue
            error = parse_error(config)
            if error:
                failed.append(f'{config} ({command!r}): {error}')
    assert not failed, f'{rel}: ' + '; '.join(failed)
