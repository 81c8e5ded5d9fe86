"""The provider is found by Airflow through its entry point, with its connection form."""

from __future__ import annotations

from hydroserver_provider import get_provider_info


def test_provider_info_is_registered_with_airflow():
    from airflow.providers_manager import ProvidersManager
    from airflow.sdk.providers_manager_runtime import ProvidersManagerTaskRuntime

    assert "airflow-provider-hydroserver" in ProvidersManager().providers
    info = ProvidersManagerTaskRuntime().hooks["hydroserver"]
    assert info is not None
    assert info.hook_class_name == "hydroserver_provider.hooks.hydroserver.HydroServerHook"
    assert info.connection_id_attribute_name == "hydroserver_conn_id"


def test_connection_form_is_declarative_with_a_masked_api_key():
    (conn_type,) = [c for c in get_provider_info()["connection-types"]
                    if c["connection-type"] == "hydroserver"]
    api_key = conn_type["conn-fields"]["api_key"]
    assert api_key["schema"]["format"] == "password"
    behaviour = conn_type["ui-field-behaviour"]
    assert behaviour["relabeling"] == {"host": "HydroServer URL", "login": "Email"}
    assert {"schema", "port"} <= set(behaviour["hidden-fields"])
