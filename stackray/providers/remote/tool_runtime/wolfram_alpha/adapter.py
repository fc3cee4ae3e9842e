"""`remote::wolfram-alpha`: the `wolfram_alpha` tool over the Full Results API
(``GET /v2/query``, JSON output, plain-text pods)."""

from __future__ import annotations

from typing import Any

from stackray.api.errors import AuthenticationError, ProviderError
from stackray.api.tools import ToolInvocationResult
from stackray.providers.remote.tool_runtime.web import WebToolAdapter


class WolframAlphaToolRuntime(WebToolAdapter):
    tool_name = "wolfram_alpha"
    tool_description = "Answer math, science and fact questions with Wolfram|Alpha"
    query_description = "The question or expression to compute"
    provider_data_key = "wolfram_alpha_api_key"
    auth_header = None  # the key travels as the `appid` query parameter

    async def run(self, query: str) -> ToolInvocationResult:
        params = {
            "input": query,
            "appid": self.client.api_key(),
            "format": "plaintext",
            "output": "json",
        }
        data = await self.get("v2/query", params)
        result = data.get("queryresult") if isinstance(data, dict) else None
        if not isinstance(result, dict):
            raise ProviderError(
                f"Wolfram|Alpha answered without a queryresult: {str(data)[:200]}",
                provider_id=self.provider_id,
            )
        error = result.get("error")
        if error and error is not False:
            message = error.get("msg", str(error)) if isinstance(error, dict) else str(error)
            if "appid" in message.lower():
                raise AuthenticationError(
                    f"provider '{self.provider_id}': Wolfram|Alpha: {message}"
                )
            raise ProviderError(f"Wolfram|Alpha: {message}", provider_id=self.provider_id)
        pods: list[dict[str, Any]] = []
        for pod in result.get("pods") or []:
            texts = [s.get("plaintext") for s in pod.get("subpods") or [] if s.get("plaintext")]
            if texts:
                pods.append({"title": pod.get("title", ""), "text": "\n".join(texts)})
        out = self.json_result({"query": query, "pods": pods})
        if not result.get("success") or not pods:
            tips = (
                (result.get("tips") or {}).get("text")
                if isinstance(result.get("tips"), dict)
                else None
            )
            out.error_message = "Wolfram|Alpha has no answer for this query" + (
                f" ({tips})" if tips else ""
            )
            out.error_code = 404
        return out
