// The official OpenAI Node SDK against the gateway: one scenario per run, its observations as JSON on stdout.
// Usage: node sdk.mjs <scenario> <base_url> <api_key>   (run by tests/api/test_node_sdk_e2e.py)
import OpenAI from "openai";

const [scenario, baseURL, apiKey] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey, maxRetries: 0 });
const hello = [{ role: "user", content: "Hello" }];
const weather = {
  type: "function",
  function: {
    name: "get_weather",
    description: "The weather in a city",
    parameters: { type: "object", properties: { city: { type: "string" } }, required: ["city"] },
  },
};

const scenarios = {
  async chat() {
    const { data, response } = await client.chat.completions
      .create({ model: "gpt-4o-mini", messages: hello, max_tokens: 5 })
      .withResponse();
    return {
      content: data.choices[0].message.content,
      finish_reason: data.choices[0].finish_reason,
      usage: data.usage,
      deployment: response.headers.get("x-gateway-deployment"),
      request_id: response.headers.get("x-request-id"),
    };
  },
  async stream() {
    const stream = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: hello,
      max_tokens: 6,
      stream: true,
      stream_options: { include_usage: true },
    });
    let text = "";
    let chunks = 0;
    let usage = null;
    for await (const chunk of stream) {
      chunks += 1;
      if (chunk.choices.length) text += chunk.choices[0].delta.content ?? "";
      if (chunk.usage) usage = chunk.usage;
    }
    return { text, chunks, usage };
  },
  async tools() {
    const first = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [{ role: "user", content: "Weather in Paris?" }],
      tools: [weather],
      tool_choice: "required",
    });
    const call = first.choices[0].message.tool_calls[0];
    const second = await client.chat.completions.create({
      model: "gpt-4o-mini",
      messages: [
        { role: "user", content: "Weather in Paris?" },
        first.choices[0].message,
        { role: "tool", tool_call_id: call.id, content: JSON.stringify({ temperature_c: 21 }) },
      ],
      tools: [weather],
    });
    return {
      finish_reason: first.choices[0].finish_reason,
      name: call.function.name,
      arguments: JSON.parse(call.function.arguments),
      answer: second.choices[0].message.content,
      second_finish: second.choices[0].finish_reason,
    };
  },
  async embeddings() {
    // The Node SDK asks for base64 by default and decodes it to floats itself.
    const result = await client.embeddings.create({ model: "text-embedding-3-small", input: ["a", "b"] });
    const v = result.data[0].embedding;
    return { count: result.data.length, dimensions: v.length, norm: Math.hypot(...v), usage: result.usage };
  },
  async bad_key() {
    const other = new OpenAI({ baseURL, apiKey: "not-a-key", maxRetries: 0 });
    try {
      await other.chat.completions.create({ model: "gpt-4o-mini", messages: hello });
      return { raised: null };
    } catch (error) {
      return { raised: error.constructor.name, status: error.status, code: error.code };
    }
  },
  async retrieve() {
    const model = await client.models.retrieve("gpt-4o-mini");
    let missing = null;
    try {
      await client.models.retrieve("no-such-model");
    } catch (error) {
      missing = { raised: error.constructor.name, status: error.status };
    }
    return { id: model.id, object: model.object, missing };
  },
};

const result = await scenarios[scenario]();
process.stdout.write(JSON.stringify(result) + "\n");
