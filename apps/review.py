"""pad's review app, as the source tree's entry: ``streamlit run apps/review.py -- --db PATH``.

The app itself is :mod:`pad_data.review.app` (inside the package, so ``pad review`` serves it
from any install); this file only runs it.
"""

from pad_data.review.app import main

main()
