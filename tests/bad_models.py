"""Model versions that misbehave, for the deployment tests: each wraps a good scikit-learn classifier as an MLflow
pyfunc (logged with this file in `code_paths`, so the gateway process imports it) and breaks it in one way."""

import time
import numpy as np
import mlflow.pyfunc


class Misbehaving(mlflow.pyfunc.PythonModel):
    """mode: raises (on rows whose first feature is above the median of the input example), slow (sleeps `delay` per call),
    inverted (1 - p). raises and slow behave for their first `healthy_calls` predictions per process, so they pass the
    warm-up (and with a larger value the pre-deployment checks) and fail on live traffic."""

    def __init__(self, model, mode, threshold=0.0, delay=0.15, healthy_calls=5):
        self.model, self.mode, self.threshold, self.delay, self.healthy_calls = (
            model,
            mode,
            threshold,
            delay,
            healthy_calls,
        )
        self.calls = 0

    def predict(self, context, model_input, params=None):
        p = self.model.predict_proba(model_input)
        self.calls += 1
        if (
            self.mode == 'raises'
            and self.calls > self.healthy_calls
            and (np.asarray(model_input.iloc[:, 0]) > self.threshold).any()
        ):
            raise ValueError('planted failure: first feature above the threshold')
        if self.mode == 'slow' and self.calls > self.healthy_calls:
            time.sleep(self.delay)
        if self.mode == 'inverted':
            p = p[:, ::-1]
        return p


def register_misbehaving(registry, good_version: str, mode: str, **kw) -> str:
    "Register a misbehaving copy of `good_version` (same training record and signature); returns the new version."
    from pathlib import Path
    from mlflow.models import infer_signature

    c = registry.client
    mv = c.get_model_version(registry.model_name, good_version)
    with registry._active() as mlflow:
        tr = mlflow.artifacts.load_dict(f"runs:/{mv.run_id}/training.json")
        sk = mlflow.pyfunc.load_model(f"models:/{registry.model_name}/{good_version}")._model_impl.sklearn_model
        ex = mlflow.pyfunc.load_model(f"models:/{registry.model_name}/{good_version}").input_example
        if mode == 'raises' and 'threshold' not in kw:
            kw['threshold'] = float(np.median(ex.iloc[:, 0]))
        w = Misbehaving(sk, mode, **kw)
        with mlflow.start_run(experiment_id=registry.experiment_id(), run_name=f'misbehaving-{mode}') as run:
            info = mlflow.pyfunc.log_model(
                name='model',
                python_model=w,
                code_paths=[str(Path(__file__))],
                signature=infer_signature(ex, sk.predict_proba(ex)),
                input_example=ex,
            )
            mlflow.log_dict(tr, 'training.json')
    return registry.register(info.model_uri, alias=None, tags={'test.mode': mode})
