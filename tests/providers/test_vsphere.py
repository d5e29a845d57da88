"""What is particular to vSphere, against VMware's vcsim through the real pyVmomi.

The shared contract (``test_contract.py``) covers what every driver must do;
here: PropertyCollector paging, the VM itself becoming the template, the
clone account, tasks, sessions that expire, TLS trust and datacenters.
"""

from __future__ import annotations

import dataclasses
import datetime
import http.server
import ipaddress
import ssl
import threading
import time
import uuid

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pyVmomi import SoapStubAdapter

from providers import registry
from providers.drivers.vsphere import architecture
from providers.exceptions import (
    AuthFailure,
    InvalidParameter,
    InvalidState,
    NotFound,
    NotSupported,
    ProviderError,
    Unavailable,
)
from tests.fakes.vcsim import Vcsim
from tests.fakes.vcsim import inventory as inv
from tests.providers.harnesses.vsphere import VSphereCloneHarness, VSphereHarness


@pytest.fixture
def vs(tmp_path):
    harness = VSphereHarness(tmp_path)
    harness.start()
    yield harness
    harness.stop()


@pytest.fixture
def soap_calls(monkeypatch):
    """The SOAP methods each driver session sends (a spy: every call still goes out)."""
    calls: list[tuple[object, str]] = []
    original = SoapStubAdapter.InvokeMethod

    def spy(self, mo, info, args, outerStub=None):
        calls.append((self, info.wsdlName))
        return original(self, mo, info, args, outerStub)

    monkeypatch.setattr(SoapStubAdapter, "InvokeMethod", spy)
    return calls


def sent_by(calls, driver) -> list[str]:
    stub = driver.session.connection().stub
    return [name for caller, name in calls if caller is stub]


# -- listing -------------------------------------------------------------------------------------


def test_listing_reads_pages_of_vms_never_one_vm_at_a_time(vs, soap_calls):
    # given: 4 VMs and 5 templates, read 2 per page
    templates = vs.add_images(5)
    driver = vs.driver(page_size=2)
    driver.list_images()  # logs in and finds the datacenter once
    soap_calls.clear()

    # when
    pages = list(driver.iter_image_pages())

    # then: a session check, then 9 objects in 5 round trips
    assert sent_by(soap_calls, driver) == ["RetrievePropertiesEx"] * 2 + ["ContinueRetrievePropertiesEx"] * 4
    assert len(pages) == 5
    assert sorted(i.id for page in pages for i in page) == sorted(templates)
    image = next(i for page in pages for i in page)
    assert (image.raw_state, image.owner_id, image.architecture) == (
        "AVAILABLE",
        vs.sim.username,
        "i386",
    )
    assert image.extra["moid"].startswith("vm-") and image.extra["datastore"] == "LocalDS_0"


def test_instances_are_the_vms_that_are_not_templates(vs):
    (template,) = vs.add_images(1)
    inv.power_off(vs.si, "DC0_H0_VM1")
    instances = {i.name: i for i in vs.driver().list_instances()}
    assert sorted(instances) == ["DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1", "DC0_H0_VM0", "DC0_H0_VM1"]
    assert template not in {i.id for i in instances.values()}
    running, stopped = instances["DC0_H0_VM0"], instances["DC0_H0_VM1"]
    assert (running.state, running.actions) == ("RUNNING", ("reboot", "stop"))
    assert (stopped.state, stopped.actions, stopped.create_image_refusal) == (
        "STOPPED",
        ("start", "destroy"),
        "",
    )
    assert running.id == inv.instance_uuid(vs.si, "DC0_H0_VM0")
    assert dict(running.hardware_profile_overrides) == {"cpu": "1", "memory": "32"}
    assert running.realm_id == "LocalDS_0"
    assert [r.id for r in vs.driver().realms()] == ["LocalDS_0"]


def test_ids_that_are_not_uuids_are_unknown_without_asking_vcenter(vs, soap_calls):
    driver = vs.driver()
    driver.list_images()
    soap_calls.clear()
    assert driver.get_image("vm-57") is None and driver.get_instance("../etc") is None
    assert sent_by(soap_calls, driver) == []


@pytest.mark.parametrize(
    ("guest_id", "arch"),
    [
        ("otherGuest", "i386"),
        ("otherGuest64", "x86_64"),
        ("ubuntu64Guest", "x86_64"),
        ("winXPProGuest", "i386"),
    ],
)
def test_architecture_comes_from_the_guest_id(guest_id, arch):
    assert architecture(guest_id) == arch


# -- creating ------------------------------------------------------------------------------------


def test_the_vm_itself_becomes_the_template_and_keeps_its_id(vs):
    # given: a powered-off VM
    vm_id = vs.imageable_instance()
    driver = vs.driver()
    name = next(i.name for i in driver.list_instances() if i.id == vm_id)
    assert not driver.capabilities.honours_image_name and not driver.capabilities.honours_image_description

    # when
    image = driver.create_image(instance_id=vm_id, name="ignored", description="ignored too")

    # then: same id and name, the VM left the instances and is a template
    assert (image.id, image.name, image.description, image.state.value) == (vm_id, name, None, "AVAILABLE")
    assert "itself into this template" in image.failure_reason  # the answer says the name was not used
    assert driver.get_instance(vm_id) is None and vm_id not in {i.id for i in driver.list_instances()}
    assert driver.get_image(vm_id) == dataclasses.replace(image, failure_reason="")
    assert inv.machines(vs.si)[name]["config.template"] is True


def test_a_running_vm_is_refused_before_vcenter_and_by_it(vs):
    running = vs.refused_instance()
    driver = vs.driver()
    with pytest.raises(InvalidState, match="poweredOn; vSphere turns only a powered-off VM into a template"):
        driver.create_image(instance_id=running, name="x")
    # vCenter's own InvalidPowerState (from a task) says the same, through the one translation
    with pytest.raises(InvalidState, match="the VM is poweredOn; vSphere needs it poweredOff"):
        driver.destroy_instance(running)


def test_a_template_is_not_an_instance_to_image(vs):
    (template,) = vs.add_images(1)
    with pytest.raises(NotFound, match=f"Instance {template} not found"):
        vs.driver().create_image(instance_id=template, name="x")


def test_the_clone_account_keeps_the_vm_and_names_the_template(tmp_path):
    harness = VSphereCloneHarness(tmp_path)
    harness.start()
    try:
        vm_id = harness.imageable_instance()
        driver = harness.driver()
        caps = driver.capabilities
        assert caps.honours_image_name and caps.honours_image_description and not caps.create_returns_id

        made = driver.create_image(instance_id=vm_id, name="golden", description="base image")

        assert made.id == "" and made.name == "golden"  # found by name, as the capabilities say
        (template,) = driver.find_created_images(name="golden", exclude_ids=frozenset())
        assert (template.name, template.description, template.state.value) == (
            "golden",
            "base image",
            "AVAILABLE",
        )
        assert template.id != vm_id and driver.get_image(template.id) == template
        assert driver.get_instance(vm_id) is not None  # the VM stays
        with pytest.raises(InvalidParameter, match="needs a name"):
            driver.create_image(instance_id=vm_id, name="")
        with pytest.raises(InvalidParameter, match="at most 80 characters"):
            driver.create_image(instance_id=vm_id, name="x" * 81)

    finally:
        harness.stop()


# -- destroying ----------------------------------------------------------------------------------


def test_destroy_runs_a_task_and_never_touches_a_vm(vs, soap_calls):
    (template,) = vs.add_images(1)
    driver = vs.driver()
    driver.destroy_image(template)
    assert "Destroy_Task" in sent_by(soap_calls, driver)
    assert driver.get_image(template) is None
    with pytest.raises(NotFound, match=f"Image {template} not found"):
        driver.destroy_image(template)
    vm_id = vs.imageable_instance()
    with pytest.raises(NotFound):
        driver.destroy_image(vm_id)  # an instance id is no image
    assert driver.get_instance(vm_id) is not None


# -- instances -----------------------------------------------------------------------------------


def test_power_actions_and_destroying_a_vm(vs):
    vm_id = vs.refused_instance()
    driver = vs.driver()
    stopped = driver.instance_action(vm_id, "stop")
    assert (stopped.state, stopped.create_image_refusal) == ("STOPPED", "")
    assert driver.instance_action(vm_id, "start").state == "RUNNING"
    assert driver.instance_action(vm_id, "reboot").state == "RUNNING"
    with pytest.raises(NotSupported):
        driver.instance_action(vm_id, "hibernate")
    driver.instance_action(vm_id, "stop")
    driver.destroy_instance(vm_id)
    assert driver.get_instance(vm_id) is None


# -- sessions ------------------------------------------------------------------------------------


def test_an_expired_session_is_renewed(vs, soap_calls):
    driver = vs.driver()
    first = driver.list_images()
    assert inv.end_other_sessions(vs.si) == 1  # vCenter forgets the driver's session
    assert driver.list_images() == first
    assert driver.get_instance(inv.instance_uuid(vs.si, "DC0_H0_VM0")) is not None
    assert [name for _, name in soap_calls].count("Login") == 2


def test_a_session_lost_mid_listing_fails_the_listing_and_the_next_one_works(vs):
    vs.add_images(3)
    driver = vs.driver(page_size=1)
    pages = driver.iter_image_pages()
    next(pages)
    inv.end_other_sessions(vs.si)
    with pytest.raises(Unavailable, match="ended the session during a paged listing"):
        list(pages)
    assert len(driver.list_images()) == 3


def test_an_idle_timeout_is_a_renewal_too(tmp_path, soap_calls):
    sim = Vcsim.start(tmp_path, idle_timeout="300ms")
    try:
        driver = registry.create(
            "vsphere",
            provider="DC0",
            params={"host": sim.host, "port": sim.port, "ca_bundle": str(sim.ca_file)},
            credentials={"user": sim.username, "password": sim.password},
        )
        assert len(driver.list_instances()) == 4
        time.sleep(1.0)  # vcsim expires idle sessions on a 300 ms timer
        assert len(driver.list_instances()) == 4
        assert [name for _, name in soap_calls].count("Login") == 2
    finally:
        sim.stop()


# -- trust and reachability ----------------------------------------------------------------------


def test_tls_is_verified_unless_the_account_says_insecure(vs):
    with pytest.raises(Unavailable, match=r"could not be verified .*set the account's ca_bundle"):
        vs.driver(ca_bundle="").list_images()
    assert len(vs.driver(ca_bundle="", insecure=True).list_instances()) == 4
    assert len(vs.driver(ca_bundle=vs.sim.ca_file.read_text()).list_instances()) == 4
    # pasted into the admin's one-line field, the PEM loses its newlines and still works
    one_line = vs.sim.ca_file.read_text().replace("\n", "")
    assert len(vs.driver(ca_bundle=one_line).list_instances()) == 4
    with pytest.raises(InvalidParameter, match="'ca_bundle' is not usable"):
        vs.driver(ca_bundle=str(vs.tmp_path / "missing.pem"))
    with pytest.raises(InvalidParameter, match="'ca_bundle' is not usable"):
        vs.driver(ca_bundle="-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with pytest.raises(InvalidParameter, match="exclude each other"):
        vs.driver(insecure=True)


def test_a_bad_password_is_an_auth_failure_without_the_password(vs):
    with pytest.raises(AuthFailure) as caught:
        vs.driver(credentials=vs.bad_credentials()).list_images()
    assert "not-the-password" not in f"{caught.value} {caught.value.detail}"


def _self_signed(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "web.pem", tmp_path / "web.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.mark.parametrize("status", [200, 500, 503])
def test_a_web_server_that_is_not_vcenter_is_unavailable(vs, status):
    cert_file, key_file = _self_signed(vs.tmp_path)

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html><body>Welcome to nginx</body></html>")

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Page)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        driver = vs.driver(port=server.server_address[1], ca_bundle=str(cert_file))
        with pytest.raises(Unavailable, match="answered"):
            driver.list_images()
    finally:
        server.shutdown()
        server.server_close()


# -- datacenters ---------------------------------------------------------------------------------


def test_the_provider_is_the_datacenter(vs):
    with pytest.raises(ProviderError, match="has no datacenter 'DC9' \\(it has: DC0\\)"):
        vs.driver(provider="DC9").list_images()
    assert len(vs.driver(provider="").list_instances()) == 4  # the only one
    assert len(vs.driver(provider="dc0").list_instances()) == 4  # as accounts store it


def test_several_datacenters_need_a_provider(tmp_path):
    sim = Vcsim.start(tmp_path, datacenters=2)
    try:

        def driver(provider: str):
            return registry.create(
                "vsphere",
                provider=provider,
                params={"host": sim.host, "port": sim.port, "ca_bundle": str(sim.ca_file)},
                credentials={"user": sim.username, "password": sim.password},
            )

        with pytest.raises(ProviderError, match="has 2 datacenters; choose one as the provider"):
            driver("").list_images()
        dc0 = {i.name for i in driver("DC0").list_instances()}
        dc1 = {i.name for i in driver("DC1").list_instances()}
        assert dc0 and dc1 and not dc0 & dc1
    finally:
        sim.stop()


def test_unknown_ids_are_none_and_ids_are_instance_uuids(vs):
    driver = vs.driver()
    assert driver.get_image(str(uuid.uuid4())) is None
    vm = inv.machines(vs.si)["DC0_H0_VM0"]
    assert driver.get_instance(vm["config.instanceUuid"]).extra["moid"] == vm["vm"]._moId
