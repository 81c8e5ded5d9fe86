"""The vocabulary objects every datastream points at.

HydroServer ships system-wide defaults like these.
"""

from __future__ import annotations

SENSOR_ID = "019a0000-0000-7000-8000-000000000001"


OBSERVED_PROPERTY_ID = "019a0000-0000-7000-8000-000000000002"


PROCESSING_LEVEL_ID = "019a0000-0000-7000-8000-000000000003"


SENSOR = {
    "name": "Unknown sensor",
    "description": "Default sensor of the local HydroServer.",
    "encodingType": "application/json",
    "manufacturer": None,
    "model": None,
    "modelLink": None,
    "methodType": "Instrument Deployment",
    "methodLink": None,
    "methodCode": None,
    "id": SENSOR_ID,
    "workspaceId": None,
}


OBSERVED_PROPERTY = {
    "name": "Unknown",
    "definition": "Default observed property of the local HydroServer.",
    "description": "Default observed property of the local HydroServer.",
    "type": "Hydrology",
    "code": "unknown",
    "id": OBSERVED_PROPERTY_ID,
    "workspaceId": None,
}


PROCESSING_LEVEL = {
    "code": "0",
    "definition": "Raw data",
    "explanation": None,
    "id": PROCESSING_LEVEL_ID,
    "workspaceId": None,
}
