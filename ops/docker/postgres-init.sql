-- The deployment state of the signal gateway lives in its own database ([deploy] state_url); MLflow uses `mlflow`.
CREATE DATABASE deploy OWNER autotrader;
