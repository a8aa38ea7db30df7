# pyinfra loads this file (from the directory it runs in) before the inventory.
# Every host's data is checked before pyinfra connects to any host: see ipip6/inventory_check.py.
from pyinfra import state

from ipip6.inventory_check import check_before_connect

check_before_connect(state)
