"""The classifiers as document steps: each adds its score as a column and decides."""

from __future__ import annotations

from corpus_assets.steps.base import Document, Step
from corpus_assets.steps.classifiers.common import Untrainable
from corpus_assets.steps.classifiers.gpt3 import Gpt3Classifier, pareto_keep


class Gpt3QualityFilter(Step):
    """GPT-3's rule: keep when ``np.random.pareto(alpha) > 1 - score``. Adds
    ``gpt3_quality_score`` (the document's fold model's probability of "reference") and
    ``gpt3_pareto_draw``. Reason: ``gpt3_pareto_rejected`` (detail: score and draw);
    ``classifier_untrainable`` for every document of a dump whose model could not train."""

    name = "gpt3_quality"
    output_columns = {"gpt3_quality_score": float, "gpt3_pareto_draw": float}

    def __init__(self, classifier: Gpt3Classifier):
        self.classifier = classifier
        self.alpha = classifier.config.pareto_alpha
        self.seed = classifier.config.seed

    def apply(self, doc: Document):
        if isinstance(self.classifier, Untrainable):
            doc["gpt3_quality_score"] = doc["gpt3_pareto_draw"] = float("nan")
            return "classifier_untrainable", self.classifier.reason
        doc_id = doc.get("doc_id") or ""
        score = self.classifier.score(doc_id, doc.get("text") or "")
        kept, draw = pareto_keep(score, doc_id, self.alpha, self.seed)
        doc["gpt3_quality_score"] = score
        doc["gpt3_pareto_draw"] = draw
        if kept:
            return None
        return "gpt3_pareto_rejected", f"score={score:.4f} draw={draw:.4f} <= 1 - score"


class ReferenceFilter(Step):
    """LLaMA's rule: remove pages the reference classifier does not call references.
    Adds ``llama_reference_score``. Reason: ``not_reference_like`` (detail: score);
    ``classifier_untrainable`` for every document of a dump whose model could not train."""

    name = "llama_reference"
    output_columns = {"llama_reference_score": float}

    def __init__(self, classifier):  # HashedLogisticRegression or ReferenceClassifier
        self.classifier = classifier
        self.threshold = classifier.config.threshold

    def apply(self, doc: Document):
        if isinstance(self.classifier, Untrainable):
            doc["llama_reference_score"] = float("nan")
            return "classifier_untrainable", self.classifier.reason
        score = self.classifier.score(doc.get("doc_id") or "", doc.get("text") or "")
        doc["llama_reference_score"] = score
        if score >= self.threshold:
            return None
        return "not_reference_like", f"score={score:.4f} < {self.threshold}"
