"""What several test files share, by concern; fixtures live in conftest.py, services in services.py,
the browser in browser.py. Test files import from the submodule (``from helpers.formats import ...``;
pyproject.toml puts tests/ on the path), never from another test file. Everything here is tiny and offline.

- repo: the repository's root, a committed copy of it for `dvc repro`, DVC, params edits;
- formats: data files in the exact upstream formats (IDX, CIFAR-10), Debian's Fashion-MNIST;
- images: image folders written with Pillow;
- runs: a tiny learnable project, the al stage run, crashed and resumed in it;
- fakes: a fake learner with hand-made outputs, learning curves by hand;
- labelling: a labelling project on real image files.
"""
