"""A local Hugging Face evaluate module written for ftguard's tests: exact match (a mean over
items) and micro-averaged token F1 over the whole corpus (not a mean over items)."""

import datasets
import evaluate


class TokenOverlap(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=__doc__, citation="", inputs_description="predictions, references",
            features=datasets.Features({"predictions": datasets.Value("string"),
                                        "references": datasets.Value("string")}))

    def _compute(self, predictions, references):
        overlap = predicted = expected = exact = 0
        for prediction, reference in zip(predictions, references):
            p, r = prediction.lower().split(), reference.lower().split()
            overlap += sum(min(p.count(t), r.count(t)) for t in set(p))
            predicted += len(p)
            expected += len(r)
            exact += int(prediction.strip().lower() == reference.strip().lower())
        precision = overlap / predicted if predicted else 0.0
        recall = overlap / expected if expected else 0.0
        f1 = 2 * precision * recall / (precision + recall) if overlap else 0.0
        return {"token_f1": f1, "exact": exact / len(predictions)}
