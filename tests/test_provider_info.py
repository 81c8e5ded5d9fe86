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


def _form(conn_type: str):
    """What Airflow's UI receives to draw the connection form of ``conn_type``
    (``GET /ui/connections/hook_meta``)."""
    from airflow.api_fastapi.core_api.services.ui.connections import HookMetaService

    (meta,) = [m for m in HookMetaService.hook_meta_data() if m.connection_type == conn_type]
    return meta


def test_the_hydroserver_form_shows_the_api_key_as_its_masked_main_field():
    (conn_type,) = [c for c in get_provider_info()["connection-types"]
                    if c["connection-type"] == "hydroserver"]
    behaviour = conn_type["ui-field-behaviour"]
    assert {"schema", "port"} <= set(behaviour["hidden-fields"])
    form = _form("hydroserver")
    # the standard password field: masked by Airflow, in the form's main section, labelled
    assert form.standard_fields.password.title == "API key (or the account password)"
    assert not form.standard_fields.password.hidden
    assert form.standard_fields.login.title == "Email (only for an account login)"
    assert form.standard_fields.host.title == "HydroServer URL"
    # no second key field among the extras (the collapsed "Extra Fields" section)
    assert not form.extra_fields


def test_the_hydrocron_form_has_one_api_key_field():
    form = _form("hydrocron")
    assert form.standard_fields.password.title == "API key"
    assert form.standard_fields.login.hidden
    keyish = [name for name, spec in (form.extra_fields or {}).items()
              if "key" in name.lower() or "key" in str(spec.get("schema", {}).get("title", ""))
              .lower() or spec.get("schema", {}).get("format") == "password"]
    assert keyish == []
