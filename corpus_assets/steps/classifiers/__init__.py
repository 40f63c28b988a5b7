"""Quality classifiers of the classic web pipelines, as plain steps (no Dagster):

- ``gpt3``: GPT-3's quality classifier (Brown et al. 2020, appendix A): logistic regression
  on hashed token features, reference corpus vs raw crawl, documents kept by a Pareto draw;
- LLaMA's reference classifier (Touvron et al. 2023, section 2): a linear model over words
  and word bigrams, pages used as Wikipedia references vs random crawl pages, a threshold;
  by default the hashed logistic regression of ``gpt3``, or fastText (``reference``).

Both are cross-fitted (``common.fold_of``): the crawl documents they are trained on are
also the documents they score, so each document is scored by the model of its fold, which
was trained on the other folds only. docs/recipes.md has the definitions and figures.
"""
