"""labhub-client: push instrument files to LabHub, watch instrument folders (CLI and Python API).

from labhub_client import LabHub
hub = LabHub("https://labhub.example.org", token)
project = hub.project("Wind tunnel")
batch = hub.send(project["id"], "run-042.csv")
for job in batch["jobs"]:
    print(hub.follow(job["id"])["status"])
"""

from labhub_client.api import LabHub, LabHubError
from labhub_client.config import Config

__all__ = ["Config", "LabHub", "LabHubError"]
__version__ = "0.1.0"
