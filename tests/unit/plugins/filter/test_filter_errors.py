"""What a playbook author sees when a matrix filter is called wrongly: a message naming the filter and the fix."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.vfio.migration.plugins.filter.matrix import FilterModule

FILTERS = FilterModule().filters()


@pytest.mark.parametrize("name", ["probe_batches", "compat_matrix"])
def test_missing_host_list_names_the_filter_and_never_shows_a_placeholder(name):
    with pytest.raises(AnsibleFilterError) as exc:
        FILTERS[name]({"hv1": {"ansible_facts": {}}})
    msg = str(exc.value)
    assert "%s" not in msg  # defect: a literal %s was shown
    assert msg.startswith("%s: give the list of hosts: hostvars | vfio.migration.%s(ansible_play_hosts_all)"
                          % (name, name))


def test_a_failed_fact_file_write_keeps_the_facts_and_its_message():
    """Defect: mdev_facts gathered, then failed writing vfio_mdev.fact: recorded as ok with the message lost."""
    result = {"failed": True, "msg": "writing /etc/ansible/facts.d/vfio_mdev.fact failed: [Errno 30] Read-only",
              "ansible_facts": {"vfio_mdev": {"parents": {}}}}
    states = FILTERS["gather_states"]({"hv1": {"vfio_migration_facts_result": result}}, ["hv1"])
    assert states == {"hv1": {"state": "ok", "reason": "facts gathered, but the module failed: writing "
                                                       "/etc/ansible/facts.d/vfio_mdev.fact failed: [Errno 30] "
                                                       "Read-only"}}
    ok = FILTERS["gather_states"]({"hv1": {"vfio_migration_facts_result": dict(result, failed=False)}}, ["hv1"])
    assert ok == {"hv1": {"state": "ok", "reason": None}}
