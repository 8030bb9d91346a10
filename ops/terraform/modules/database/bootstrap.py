"""Database bootstrap and credential rotation, run as a one-off ECS task of the kit's image (Terraform puts this file
in the `db-bootstrap` task definition; `aws ecs run-task` starts it, see docs/operations.md).

With the master password (PGPASSWORD, from the RDS-managed secret), it creates or updates the application role
(APP_USER), the databases `mlflow`, `mlflow_auth` (MLflow's users) and `deploy` owned by it, sets a new random password for the role and stores it in
the application secret (APP_SECRET_ARN, JSON: username, password). The services read that secret at start; so the
task then forces a new deployment of each service in SERVICES (CLUSTER), which restarts them with the new password.
The applications never connect as the master user, and RDS's rotation of the master secret does not touch them.
Run it again at any time to rotate the application password."""
import json, os, secrets

import boto3
import psycopg
from psycopg import sql

user, host = os.environ['APP_USER'], os.environ['PGHOST']
password = secrets.token_urlsafe(32)
with psycopg.connect(host=host, port=os.environ.get('PGPORT', '5432'), dbname='postgres', user=os.environ['PGUSER'],
                     password=os.environ['PGPASSWORD'], sslmode='require', autocommit=True) as c:
    exists = c.execute('SELECT 1 FROM pg_roles WHERE rolname = %s', (user,)).fetchone()
    verb = 'ALTER' if exists else 'CREATE'
    c.execute(sql.SQL(verb + ' ROLE {} LOGIN PASSWORD {}').format(sql.Identifier(user), sql.Literal(password)))
    c.execute(sql.SQL('GRANT {} TO CURRENT_USER').format(sql.Identifier(user)))
    for db in ('mlflow', 'mlflow_auth', 'deploy'):
        if not c.execute('SELECT 1 FROM pg_database WHERE datname = %s', (db,)).fetchone():
            c.execute(sql.SQL('CREATE DATABASE {} OWNER {}').format(sql.Identifier(db), sql.Identifier(user)))
        else:
            c.execute(sql.SQL('ALTER DATABASE {} OWNER TO {}').format(sql.Identifier(db), sql.Identifier(user)))
for db in ('mlflow', 'mlflow_auth', 'deploy'):   # the public schema of each database belongs to the application role too
    with psycopg.connect(host=host, port=os.environ.get('PGPORT', '5432'), dbname=db, user=os.environ['PGUSER'],
                         password=os.environ['PGPASSWORD'], sslmode='require', autocommit=True) as c:
        c.execute(sql.SQL('ALTER SCHEMA public OWNER TO {}').format(sql.Identifier(user)))

boto3.client('secretsmanager').put_secret_value(SecretId=os.environ['APP_SECRET_ARN'],
                                                SecretString=json.dumps({'username': user, 'password': password}))
ecs = boto3.client('ecs')
for service in filter(None, os.environ.get('SERVICES', '').split(',')):
    ecs.update_service(cluster=os.environ['CLUSTER'], service=service, forceNewDeployment=True)
print(f'role {user}: password rotated; databases mlflow, mlflow_auth, deploy; redeployed: {os.environ.get("SERVICES") or "none"}')
