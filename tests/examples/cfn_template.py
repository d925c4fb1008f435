"""Read examples/cloudformation.yaml the way CloudFormation does, for the checks in test_template.

`load` parses the YAML short-form tags (!Ref, !Sub, !If, ...) into their long form. `render`
evaluates a parsed template for a set of parameter values: rules refuse parameters as
CloudFormation would, conditions decide which resources exist, intrinsic functions are
resolved, AWS::NoValue drops the element that returned it.
Pseudo parameters and resources stay symbolic, so a check can tell a partition that came from
${AWS::Partition} from one typed by hand:

    ${AWS::Partition} -> <AWS.Partition>      !Ref RouteTableA      -> {ref:RouteTableA}
    !GetAZs ""        -> [<az0>, <az1>, <az2>]  !GetAtt Vpc.CidrBlock -> {getatt:Vpc.CidrBlock}
"""

import copy
import re

import yaml

SHORT_TAGS = {
    "Ref": "Ref", "Condition": "Condition", "GetAtt": "Fn::GetAtt", "Sub": "Fn::Sub",
    "Join": "Fn::Join", "Select": "Fn::Select", "Split": "Fn::Split", "If": "Fn::If",
    "Equals": "Fn::Equals", "Not": "Fn::Not", "And": "Fn::And", "Or": "Fn::Or",
    "GetAZs": "Fn::GetAZs", "Base64": "Fn::Base64", "FindInMap": "Fn::FindInMap",
    "ImportValue": "Fn::ImportValue", "Cidr": "Fn::Cidr",
}
PSEUDO = ("AWS::Partition", "AWS::Region", "AWS::AccountId", "AWS::URLSuffix", "AWS::StackId")
NO_VALUE = object()


class _Loader(yaml.SafeLoader):
    pass


def _construct(loader, suffix, node):
    if suffix not in SHORT_TAGS:
        raise yaml.constructor.ConstructorError(None, None, f"unknown tag !{suffix}", node.start_mark)
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {SHORT_TAGS[suffix]: value}


_Loader.add_multi_constructor("!", _construct)


def load(text):
    """The template as plain dicts and lists, short-form tags in long form."""
    return yaml.load(text, Loader=_Loader)


class RenderError(Exception):
    pass


class Rendered:
    """A template evaluated for one set of parameters."""

    def __init__(self, template, params=None, stack_name="irisvip-test"):
        self.template = template
        self.stack_name = stack_name
        self.params = {}
        for name, spec in template.get("Parameters", {}).items():
            self.params[name] = str(spec.get("Default", "")) if "Default" in spec else None
        for name, value in (params or {}).items():
            if name not in self.params:
                raise RenderError(f"no parameter {name}")
            allowed = template["Parameters"][name].get("AllowedValues")
            if allowed is not None and value not in [str(a) for a in allowed]:
                raise RenderError(f"{name}={value} is not one of {allowed}")
            self.params[name] = value
        missing = [n for n, v in self.params.items() if v is None]
        if missing:
            raise RenderError(f"parameters without a value: {missing}")
        self._conditions = {}
        # Rules: CloudFormation refuses the parameters when an assertion of a rule whose
        # RuleCondition holds (or that has none) is false.
        for name, rule in template.get("Rules", {}).items():
            if "RuleCondition" in rule and not self.resolve(rule["RuleCondition"], f"Rules.{name}"):
                continue
            for assertion in rule.get("Assertions", []):
                if not self.resolve(assertion["Assert"], f"Rules.{name}"):
                    raise RenderError(f"rule {name}: {assertion.get('AssertDescription', 'assertion failed')}")
        self.resources = {}
        for name, res in template.get("Resources", {}).items():
            if "Condition" in res and not self.condition(res["Condition"]):
                continue
            out = {k: v for k, v in res.items() if k not in ("Properties", "Condition")}
            out["Properties"] = self.resolve(res.get("Properties", {}), f"Resources.{name}")
            self.resources[name] = out
        self.outputs = {
            name: self.resolve(out.get("Value"), f"Outputs.{name}")
            for name, out in template.get("Outputs", {}).items()
            if "Condition" not in out or self.condition(out["Condition"])
        }

    def condition(self, name):
        if name not in self._conditions:
            spec = self.template.get("Conditions", {}).get(name)
            if spec is None:
                raise RenderError(f"no condition {name}")
            self._conditions[name] = bool(self.resolve(spec, f"Conditions.{name}"))
        return self._conditions[name]

    def of_type(self, rtype):
        return {n: r for n, r in self.resources.items() if r["Type"] == rtype}

    def _ref(self, name, where):
        if name == "AWS::StackName":
            return self.stack_name
        if name == "AWS::NoValue":
            return NO_VALUE
        if name in PSEUDO:
            return "<" + name.replace("::", ".") + ">"
        if name in self.params:
            return self.params[name]
        res = self.template.get("Resources", {}).get(name)
        if res is None:
            raise RenderError(f"{where}: Ref to unknown {name}")
        if "Condition" in res and not self.condition(res["Condition"]):
            raise RenderError(f"{where}: Ref to {name}, which condition {res['Condition']} leaves out")
        return f"{{ref:{name}}}"

    def _sub(self, text, variables, where):
        def repl(m):
            inner = m.group(1)
            if inner.startswith("!"):
                return "${" + inner[1:] + "}"
            if inner in variables:
                return str(variables[inner])
            if "." in inner:
                return f"{{getatt:{inner}}}"
            value = self._ref(inner, where)
            if value is NO_VALUE:
                raise RenderError(f"{where}: AWS::NoValue inside Fn::Sub")
            return str(value)

        return re.sub(r"\$\{([^}]+)\}", repl, text)

    def resolve(self, value, where=""):
        if isinstance(value, list):
            out = [self.resolve(v, where) for v in value]
            return [v for v in out if v is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            (key, arg), = value.items()
            fn = getattr(self, "_fn_" + key.replace("::", "_").replace("Fn_", ""), None)
            if key == "Ref" or key == "Condition" or key.startswith("Fn::"):
                if fn is None:
                    raise RenderError(f"{where}: {key} is not supported by this renderer")
                return fn(arg, where)
        out = {}
        for k, v in value.items():
            r = self.resolve(v, f"{where}.{k}")
            if r is not NO_VALUE:
                out[k] = r
        return out

    # Intrinsic functions (only those a template may use here).
    def _fn_Ref(self, arg, where):
        return self._ref(arg, where)

    def _fn_Condition(self, arg, where):
        return self.condition(arg)

    def _fn_GetAtt(self, arg, where):
        name, attr = arg
        self._ref(name, where)
        return f"{{getatt:{name}.{attr}}}"

    def _fn_Sub(self, arg, where):
        if isinstance(arg, str):
            return self._sub(arg, {}, where)
        text, variables = arg
        return self._sub(text, {k: self.resolve(v, where) for k, v in variables.items()}, where)

    def _fn_Join(self, arg, where):
        sep, items = arg
        if not isinstance(sep, str):
            raise RenderError(f"{where}: the Fn::Join delimiter must be a plain string")
        return sep.join(str(i) for i in self.resolve(items, where))

    def _fn_Split(self, arg, where):
        sep, text = arg
        return str(self.resolve(text, where)).split(sep)

    def _fn_Select(self, arg, where):
        index, items = arg
        items = self.resolve(items, where)
        index = int(self.resolve(index, where))
        if not 0 <= index < len(items):
            raise RenderError(f"{where}: Fn::Select index {index} out of {len(items)}")
        return items[index]

    def _fn_GetAZs(self, arg, where):
        return ["<az0>", "<az1>", "<az2>"]

    def _fn_If(self, arg, where):
        cond, yes, no = arg
        return self.resolve(yes if self.condition(cond) else no, where)

    def _fn_Equals(self, arg, where):
        a, b = (self.resolve(x, where) for x in arg)
        return str(a) == str(b)

    def _fn_Not(self, arg, where):
        return not self.resolve(arg[0], where)

    def _fn_And(self, arg, where):
        return all(self.resolve(x, where) for x in arg)

    def _fn_Or(self, arg, where):
        return any(self.resolve(x, where) for x in arg)

    def _fn_Base64(self, arg, where):
        # Kept as text: the checks read the user data.
        return self.resolve(arg, where)


def render(template, params=None, stack_name="irisvip-test"):
    return Rendered(copy.deepcopy(template), params, stack_name)


def strings(value):
    """Every string inside a rendered value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from strings(k)
            yield from strings(v)
