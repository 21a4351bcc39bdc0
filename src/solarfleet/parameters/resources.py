"""The parameters' resources: the parameter types (their table is the fleet's) and every value
set on a unit or a part (set through the actions)."""

from __future__ import annotations

from solarfleet.api.registry import SYSTEM_WRITES, JSONObject
from solarfleet.api.spec import ResourceSpec
from solarfleet.fleet.models import ParameterType
from solarfleet.fleet.scope import by_part_history, by_unit
from solarfleet.parameters.history import as_of_view
from solarfleet.parameters.models import PartParameter, ProductParameter
from solarfleet.parameters.validation import check_parameter_type

PARAMETER_TYPES = ResourceSpec(
    name="parameter_types",
    model=ParameterType,
    methods=SYSTEM_WRITES,
    description="Typed settings units and parts can carry, with validation rules: a JSON "
    "object with any of min, max (int, float: numbers; datetime: instants; inclusive), "
    "choices (non-empty list of allowed values; not for bool), pattern (a regex the whole "
    "value must match; string), max_length (characters; string). Unknown rules, rules "
    "that do not apply to the data_type, or min > max are refused (400).",
    field_types={"validation_rules": JSONObject},
    before_write=check_parameter_type,
)

PRODUCT_PARAMETERS = ResourceSpec(
    name="product_parameters",
    model=ProductParameter,
    methods=SYSTEM_WRITES,
    description="Every value set on a unit. Set values through the parameters action.",
    scope=by_unit(),
    relations=("product", "parameter_type"),
    as_of=as_of_view,
)

PART_PARAMETERS = ResourceSpec(
    name="part_parameters",
    model=PartParameter,
    methods=SYSTEM_WRITES,
    description="Every value set on a part. Set values through the parameters action. "
    "ENTITY users see the rows that lived while the part was on their units only.",
    scope=by_part_history(),
    relations=("part", "parameter_type"),
    as_of=as_of_view,
)
