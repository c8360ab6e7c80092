"""BestOfNNode as PySpur 0.1.18 runs it: N generations, each rated by another call (the rating
prompt as system message, the generation as JSON user message, `{rating: number}` out), and the
best-rated generation is the output. The 2N calls are durable `call_llm` activities; each rating
starts as soon as its generation is done, and the N pairs run in parallel."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from pydantic import Field

from workflows.definition import WorkflowNode
from workflows.node_kinds.base import NodeHandler, NodeKind, NodeOutput, RunScope, object_schema
from workflows.node_kinds.single_llm_call import (
    SingleLLMCallNodeConfig,
    check_llm_config,
    check_template_titles,
    llm_call,
    record_usage,
)

if TYPE_CHECKING:
    from workflows.graph import RunState

_RATING_SCHEMA = '{"type": "object", "properties": {"rating": {"type": "number"} }, "required": ["rating"]}'
# Keys of the node's config each generation call takes (PySpur copies these into its generation nodes).
_GENERATION_KEYS = ("llm_info", "system_message", "user_message", "output_schema", "output_json_schema")
_RETRY_KEYS = ("max_attempts", "max_total_seconds", "timeout_seconds")


# PySpur's BestOfNNodeConfig (SingleLLMCallNodeConfig + BaseSubworkflowNodeConfig's input_map).
class BestOfNNodeConfig(SingleLLMCallNodeConfig):
    input_map: dict[str, str] | None = Field(
        default=None,
        title="Input map",
        description="Map of input variables to subworkflow input fields expressed as Dict[<subworkflow_input_field>, <input_variable_path>]",
    )
    samples: int = Field(default=3, ge=1, le=10, description="Number of samples to generate")
    rating_prompt: str = Field(
        default=(
            "Rate the following response on a scale from 0 to 10, where 0 is poor "
            "and 10 is excellent. Consider factors such as relevance, coherence, "
            "and helpfulness. Respond with only a number."
        ),
        description="The prompt for the rating LLM",
    )
    system_message: str = Field(
        default="You are a helpful assistant.", description="System message for the generation LLM"
    )
    user_message: str = Field(default="", description="User message template")
    output_schema: dict[str, str] = Field(default={"response": "string"})


class BestOfNHandler(NodeHandler[BestOfNNodeConfig]):
    node_type = "BestOfNNode"
    display_name = "Best of N"
    group = "AI"
    kind = NodeKind.ACTIVITY
    config_model = BestOfNNodeConfig
    acronym = "BONN"
    color = "#007BFF"
    input_schema = object_schema("BestOfNNodeInput")
    output_schema = object_schema("BestOfNNodeOutput")
    flushes_progress = True

    def check(self, node: WorkflowNode, config: BestOfNNodeConfig) -> None:
        check_llm_config(node, config)

    def check_in_graph(
        self, node: WorkflowNode, config: BestOfNNodeConfig, predecessor_titles: set[str]
    ) -> None:
        check_template_titles(node, config, predecessor_titles)

    async def run(self, run: RunScope, state: RunState, node_id: str, inputs: dict[str, Any]) -> NodeOutput:
        node = state.plan.by_id[node_id]
        config = self.config(node)
        raw = config.model_dump()
        retry = {k: raw[k] for k in _RETRY_KEYS}
        generate = {**{k: raw[k] for k in _GENERATION_KEYS}, **retry}
        rate = {
            "llm_info": raw["llm_info"],
            "system_message": config.rating_prompt,
            "user_message": "",
            "output_schema": {"rating": "number"},
            "output_json_schema": _RATING_SCHEMA,
            **retry,
        }
        usages: list[dict[str, Any]] = []
        progress = run.unflushed()

        async def sample(i: int) -> tuple[float, dict[str, Any]]:
            tasks = progress if i == 0 else None  # one call writes the run's progress
            gen = await llm_call(run, node_id, f"{node.title} generation {i}", generate, inputs, tasks)
            usages.append(gen.usage)
            rating = await llm_call(
                run, node_id, f"{node.title} rating {i}", rate, {f"generation_node_{i}": gen.output}
            )
            usages.append(rating.usage)
            return float(rating.output.get("rating", 0)), gen.output

        try:
            results = await asyncio.gather(*(sample(i) for i in range(config.samples)))
        finally:
            record_usage(state, node_id, usages)
        # The first of equally rated generations wins (PySpur: max over the ratings in node order).
        best = max(range(len(results)), key=lambda i: results[i][0])
        return results[best][1]
