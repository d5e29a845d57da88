"""Arranging vcsim's inventory from tests, through pyvmomi as an administrator would.

Reads go through the PropertyCollector: govmomi 0.24 panics on a direct read of
an unset property (a template's resourcePool, for one), and its ContainerView
keeps listing destroyed VMs.
"""

from __future__ import annotations

from pyVmomi import vim, vmodl

PC = vmodl.query.PropertyCollector


def _vm_filter(si) -> PC.FilterSpec:
    datacenter = si.content.rootFolder.childEntity[0]
    folders = PC.TraversalSpec(name="folders", type=vim.Folder, path="childEntity", skip=False)
    folders.selectSet = [PC.SelectionSpec(name="folders")]
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=datacenter.vmFolder, skip=True, selectSet=[folders])],
        propSet=[
            PC.PropertySpec(
                type=vim.VirtualMachine,
                pathSet=["name", "config.template", "runtime.powerState", "config.instanceUuid"],
            )
        ],
    )


def machines(si) -> dict[str, dict]:
    """Every VM and template by name: its moref, template flag, power state and instance UUID."""
    found: dict[str, dict] = {}
    for content in si.content.propertyCollector.RetrieveContents([_vm_filter(si)]):
        props = {prop.name: prop.val for prop in content.propSet}
        found[props["name"]] = {"vm": content.obj, **props}
    return found


def vm(si, name: str) -> vim.VirtualMachine:
    return machines(si)[name]["vm"]


def virtual_machines(si) -> list[str]:
    """Names of the VMs that are not templates, in inventory order."""
    return [name for name, props in machines(si).items() if not props["config.template"]]


def instance_uuid(si, name: str) -> str:
    return machines(si)[name]["config.instanceUuid"]


def power_off(si, name: str) -> None:
    finish(vm(si, name).PowerOffVM_Task())


def power_on(si, name: str) -> None:
    finish(vm(si, name).PowerOnVM_Task())


def make_template(si, name: str) -> str:
    """Power the VM off and mark it a template; returns its instance UUID."""
    target = machines(si)[name]
    if target["runtime.powerState"] != "poweredOff":
        finish(target["vm"].PowerOffVM_Task())
    target["vm"].MarkAsTemplate()
    return target["config.instanceUuid"]


def destroy(si, name: str) -> None:
    finish(vm(si, name).Destroy_Task())


def end_other_sessions(si) -> int:
    """Terminate every session but the caller's, as an idle timeout or an admin would."""
    manager = si.content.sessionManager
    own = manager.currentSession.key
    others = [session.key for session in manager.sessionList if session.key != own]
    if others:
        manager.TerminateSession(others)
    return len(others)


def finish(task: vim.Task) -> None:
    """Check a task succeeded (vcsim runs a task before answering the call that started it)."""
    info = task.info
    if info.state != vim.TaskInfo.State.success:
        raise AssertionError(f"task {info.descriptionId} ended {info.state}: {info.error}")
