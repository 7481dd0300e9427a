"""labhub-client: push instrument files to LabHub, watch instrument folders (CLI and Python API).

from labhub_client import LabHub
hub = LabHub("https://labhub.example.org", token)
project = hub.project("Wind tunnel")
batch = hub.send(project["id"], "run-042.csv")
for job in batch["jobs"]:
    print(hub.follow(job["id"])["status"])

table = hub.sql("SELECT site, avg(speed) AS mean FROM wind_tunnel.run_042 GROUP BY site")
frame = hub.dataset(dataset_id).to_pandas(columns=["time", "speed"])
"""

from labhub_client.api import Dataset, LabHub, LabHubError
from labhub_client.config import Config

Client = LabHub  # the name the docs use for asking questions: Client.sql(...), Client.dataset(id).to_pandas()

__all__ = ["Client", "Config", "Dataset", "LabHub", "LabHubError"]
__version__ = "0.1.0"
