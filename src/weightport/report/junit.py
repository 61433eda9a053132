"""Machine-readable verify reports for CI systems."""
from __future__ import annotations

import xml.etree.ElementTree as ET


def junit_xml(result) -> str:
    """JUnit XML: one testcase per model, failures carrying the figures."""
    failures = sum(not m.passed for m in result.models)
    suite = ET.Element(
        "testsuite",
        name="weightport.verify",
        tests=str(len(result.models)),
        failures=str(failures),
        errors="0",
        time=f"{sum(m.seconds for m in result.models):.3f}",
    )
    for model in result.models:
        case = ET.SubElement(suite, "testcase", classname="weightport.verify", name=model.model, time=f"{model.seconds:.3f}")
        lines = [
            f"{o.name}: max_abs={o.metrics.max_abs:.3e} mean_abs={o.metrics.mean_abs:.3e} "
            f"max_rel={o.metrics.max_rel:.3e} cosine={o.metrics.cosine:.9f}"
            + (f" floor_ratio={o.floor['ratio']:.2f}" if o.floor else "")
            + f" gate={o.gate.rule} limit={o.gate.limit:.3e} of_limit={o.gate.ratio:.3g}"
            for o in model.outputs
        ]
        lines.insert(0, f"gate: {result.rule}")
        training = model.training
        if training is not None:
            lines.append(f"train (float64, tol {training.tol:g}): loss rel {training.loss_rel:.3e}, {len(training.gradients)} gradients, "
                         f"{len(training.running_stats)} running statistics, steps {', '.join(s.optimizer for s in training.steps)}")
            lines += [f"train: {line}" for line in training.failures()]
        if model.passed:
            ET.SubElement(case, "system-out").text = "\n".join(lines)
        else:
            worst = model.worst
            message = (f"{model.model}: {worst.name}: {worst.reason}" if not worst.passed
                       else f"{model.model}: training: {training.failures()[0]}")
            failure = ET.SubElement(case, "failure", message=message)
            failure.text = "\n".join([f"weights: {model.weights}", f"inputs: {model.inputs}", *lines])
    return "<?xml version='1.0' encoding='utf-8'?>\n" + ET.tostring(suite, encoding="unicode") + "\n"
