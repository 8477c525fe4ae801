// The npm openai client (v6, pinned in package.json) against a running server: every route, streaming
// and not, log-probabilities, embeddings, and errors as the client's typed exceptions; the client's
// helpers (the chat stream helper, parse() with JSON schemas and zod, and, on a second server whose
// chat template has a tool-call format, tool calls whole, streamed and parsed, the runTools loop and
// the Responses API's function calls and their outputs); then Anthropic's npm SDK on /v1/messages
// (whole, its stream helper, token counting, a typed error).
//   node conformance.mjs BASE_URL MODEL_ID TOOLS_BASE_URL
// Prints one JSON object of what it saw (NodeClientTest compares it with the server's own answers)
// and exits 0; a failed check throws (exit 1, the assertion on stderr).
import assert from 'node:assert/strict';
import OpenAI from 'openai';
import Anthropic from '@anthropic-ai/sdk';
import { VERSION } from 'openai/version';
import { zodFunction, zodResponseFormat, zodResponsesFunction, zodTextFormat } from 'openai/helpers/zod';
import { z } from 'zod';

const [baseURL, model, toolsURL] = process.argv.slice(2);
if (!baseURL || !model || !toolsURL) {
  console.error('usage: node conformance.mjs BASE_URL MODEL_ID TOOLS_BASE_URL');
  process.exit(2);
}
const client = new OpenAI({ baseURL, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
const seen = { client: 'openai-node ' + VERSION };

// models
const models = [];
for await (const m of client.models.list()) models.push(m.id);
assert.deepEqual(models, [model]);
assert.equal((await client.models.retrieve(model)).id, model);
seen.models = models;

// chat, whole and streamed (with the usage chunk)
const chat = { model, messages: [{ role: 'user', content: 'Tell me about a dog.' }], max_tokens: 24, temperature: 0 };
const whole = await client.chat.completions.create(chat);
assert.equal(whole.object, 'chat.completion');
assert.equal(whole.choices.length, 1);
assert.ok(['stop', 'length'].includes(whole.choices[0].finish_reason));
seen.chat = whole.choices[0].message.content;
seen.chatUsage = whole.usage;
let streamed = '';
let usage = null;
const stream = await client.chat.completions.create({ ...chat, stream: true, stream_options: { include_usage: true } });
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) streamed += c.delta?.content ?? '';
}
assert.equal(streamed, seen.chat);
assert.equal(usage.prompt_tokens, seen.chatUsage.prompt_tokens);
assert.equal(usage.completion_tokens, seen.chatUsage.completion_tokens);
assert.equal(usage.prompt_tokens_details.cached_tokens, usage.prompt_tokens - 1); // the same prompt again: reused

// completions, whole and streamed
const completion = { model, prompt: 'Once upon a time', max_tokens: 30, temperature: 0 };
seen.completion = (await client.completions.create(completion)).choices[0].text;
let streamedCompletion = '';
for await (const chunk of await client.completions.create({ ...completion, stream: true })) {
  for (const c of chunk.choices) streamedCompletion += c.text;
}
assert.equal(streamedCompletion, seen.completion);

// several choices, each from its own slot
const two = await client.chat.completions.create({ ...chat, n: 2, temperature: 1.2, seed: 5 });
assert.deepEqual(two.choices.map((c) => c.index), [0, 1]);
assert.ok(two.usage.completion_tokens >= 2 && two.usage.completion_tokens <= 48, 'both choices counted');
seen.choices = two.choices.length;

// a batch of token-id prompts with echo and logprobs: the loglikelihood request of evaluation harnesses
const ll = await client.completions.create({ model, prompt: [[1, 403, 407, 261], [1, 65, 66]], max_tokens: 1, echo: true, logprobs: 1, temperature: 0 });
assert.deepEqual(ll.choices.map((c) => c.index), [0, 1]);
assert.deepEqual(ll.choices.map((c) => c.logprobs.tokens.length), [5, 4]);
assert.equal(ll.choices[0].logprobs.token_logprobs[0], null);
seen.batch = ll.choices.length;

// log-probabilities
const lp = await client.chat.completions.create({ ...chat, max_tokens: 12, logprobs: true, top_logprobs: 2 });
const content = lp.choices[0].logprobs.content;
assert.equal(content.map((t) => t.token).join(''), lp.choices[0].message.content);
for (const t of content) {
  assert.ok(t.logprob <= 0);
  assert.equal(t.top_logprobs.length, 2);
  assert.equal(t.top_logprobs[0].token, t.token); // greedy: the pick is the most likely
}
seen.logprobTokens = content.length;

// structured output
const json = await client.chat.completions.create({ ...chat, max_tokens: 60, response_format: { type: 'json_object' } });
const jsonText = json.choices[0].message.content;
if (json.choices[0].finish_reason === 'stop') {
  assert.equal(typeof JSON.parse(jsonText), 'object');
} else {
  assert.ok(jsonText.startsWith('{'));
}

// the Responses API: whole (with the client's output_text helper), the client's stream helper, raw events
const ask = { model, instructions: 'You tell short stories.', input: 'Tell me about a dog.', max_output_tokens: 24, temperature: 0 };
const resp = await client.responses.create(ask);
assert.equal(resp.object, 'response');
assert.ok(['completed', 'incomplete'].includes(resp.status));
assert.equal(resp.output[0].type, 'message');
seen.responses = resp.output_text;
let responseDeltas = '';
const helper = client.responses.stream(ask);
helper.on('response.output_text.delta', (e) => { responseDeltas += e.delta; });
const final = await helper.finalResponse();
assert.equal(responseDeltas, resp.output_text);
assert.equal(final.output_text, resp.output_text);
assert.equal(final.usage.output_tokens, resp.usage.output_tokens);
const types = [];
for await (const e of await client.responses.create({ ...ask, stream: true })) {
  assert.equal(e.sequence_number, types.length);
  types.push(e.type);
}
assert.equal(types[0], 'response.created');
assert.ok(['response.completed', 'response.incomplete'].includes(types.at(-1)), types.at(-1));
seen.responseEvents = types;

// the chat stream helper: its content events and final completion are the whole greedy answer
const helperDeltas = [];
let helperContentDone = null;
const chatHelper = client.chat.completions.stream({ ...chat, stream_options: { include_usage: true } });
chatHelper.on('content.delta', (e) => helperDeltas.push(e.delta));
chatHelper.on('content.done', (e) => { helperContentDone = e.content; });
const helperFinal = await chatHelper.finalChatCompletion();
assert.ok(helperDeltas.length > 1, 'content arrived in deltas');
assert.equal(helperDeltas.join(''), seen.chat);
assert.equal(helperContentDone, seen.chat);
assert.equal(helperFinal.choices[0].message.role, 'assistant');
assert.equal(helperFinal.choices[0].message.content, seen.chat);
assert.equal(helperFinal.choices[0].finish_reason, whole.choices[0].finish_reason);
assert.equal(helperFinal.usage.completion_tokens, seen.chatUsage.completion_tokens);
assert.equal(await chatHelper.finalContent(), seen.chat);
seen.chatHelper = { deltas: helperDeltas.length, finish_reason: helperFinal.choices[0].finish_reason };
let logprobsDone = null;
const logprobsHelper = client.chat.completions.stream({ ...chat, max_tokens: 12, logprobs: true, top_logprobs: 2 });
logprobsHelper.on('logprobs.content.done', (e) => { logprobsDone = e.content; });
const streamedLogprobs = (await logprobsHelper.finalChatCompletion()).choices[0].logprobs.content;
assert.deepEqual(streamedLogprobs.map((t) => t.token), content.map((t) => t.token));
assert.deepEqual(streamedLogprobs.map((t) => t.top_logprobs.map((a) => a.token)), content.map((t) => t.top_logprobs.map((a) => a.token)));
for (let i = 0; i < content.length; i++) {
  assert.ok(Math.abs(streamedLogprobs[i].logprob - content[i].logprob) < 1e-4, 'logprob of token ' + i); // a reused prompt may round differently
}
assert.deepEqual(logprobsDone, streamedLogprobs);

// parse(): a strict JSON schema (every property required, no others), plain and written in zod; the
// grammar makes the greedy reply valid, and the helper parses it into message.parsed (streamed: the
// content.done event's parsed; the Responses API's parse(): output_parsed)
const petSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    kind: { type: 'string', enum: ['dog', 'cat', 'bird'] },
    friendly: { type: 'boolean' },
  },
  required: ['name', 'kind', 'friendly'],
  additionalProperties: false,
};
const petAsk = { model, messages: [{ role: 'user', content: 'Describe a pet.' }], max_tokens: 60, temperature: 0 };
const parsedPet = await client.chat.completions.parse({
  ...petAsk, response_format: { type: 'json_schema', json_schema: { name: 'pet', strict: true, schema: petSchema } },
});
const pet = parsedPet.choices[0].message.parsed;
assert.equal(parsedPet.choices[0].finish_reason, 'stop');
assert.deepEqual(pet, JSON.parse(parsedPet.choices[0].message.content));
assert.deepEqual(Object.keys(pet).sort(), ['friendly', 'kind', 'name']);
assert.equal(typeof pet.name, 'string');
assert.ok(pet.name.length <= 12, pet.name);
assert.ok(['dog', 'cat', 'bird'].includes(pet.kind), pet.kind);
assert.equal(typeof pet.friendly, 'boolean');
seen.parsed = pet;
const Pet = z.object({ name: z.string().max(12), kind: z.enum(['dog', 'cat', 'bird']), friendly: z.boolean() });
const zodFormat = zodResponseFormat(Pet, 'pet');
const zodPet = await client.chat.completions.parse({ ...petAsk, response_format: zodFormat });
assert.equal(zodPet.choices[0].finish_reason, 'stop');
assert.deepEqual(zodPet.choices[0].message.parsed, Pet.parse(JSON.parse(zodPet.choices[0].message.content)));
seen.zodParsed = zodPet.choices[0].message.parsed;
seen.zodSchema = zodFormat.json_schema.schema; // what zod wrote, for the plain-HTTP request of the same
let zodStreamParsed = null;
const zodStream = client.chat.completions.stream({ ...petAsk, response_format: zodFormat });
zodStream.on('content.done', (e) => { zodStreamParsed = e.parsed; });
assert.deepEqual((await zodStream.finalChatCompletion()).choices[0].message.parsed, seen.zodParsed);
assert.deepEqual(zodStreamParsed, seen.zodParsed);
const textParsed = await client.responses.parse({
  model, input: 'Describe a pet.', max_output_tokens: 60, temperature: 0, text: { format: zodTextFormat(Pet, 'pet') },
});
assert.deepEqual(textParsed.output_parsed, seen.zodParsed); // the same greedy request as chat's
seen.responsesParsed = textParsed.output_parsed;

// tool calls, on the server with a tool-call chat template: a forced function call whole, through the
// stream helper (arguments reassembled from deltas), and parsed (a strict tool, and one written in zod)
const tools = new OpenAI({ baseURL: toolsURL, apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
const weatherParams = {
  type: 'object',
  properties: { location: { type: 'string', maxLength: 24 }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } },
  required: ['location', 'unit'],
  additionalProperties: false,
};
const weather = { type: 'function', function: { name: 'get_weather', description: 'Current weather at a place', parameters: weatherParams } };
const strictWeather = { type: 'function', function: { ...weather.function, strict: true } };
const toolAsk = {
  model, messages: [{ role: 'user', content: 'What is the weather in Paris?' }], max_tokens: 250, temperature: 0,
  tools: [weather], tool_choice: { type: 'function', function: { name: 'get_weather' } },
};
function assertWeatherCall(call) {
  assert.equal(call.type, 'function');
  assert.ok(call.id.startsWith('call_'), call.id);
  assert.equal(call.function.name, 'get_weather');
  const args = JSON.parse(call.function.arguments);
  assert.deepEqual(Object.keys(args).sort(), ['location', 'unit']);
  assert.ok(['celsius', 'fahrenheit'].includes(args.unit), args.unit);
  return args;
}
const called = await tools.chat.completions.create(toolAsk);
assert.equal(called.choices[0].finish_reason, 'tool_calls');
assert.equal(called.choices[0].message.tool_calls.length, 1);
const toolCall = called.choices[0].message.tool_calls[0];
assertWeatherCall(toolCall);
seen.toolCall = toolCall.function;
const argumentDeltas = [];
const argumentsDone = [];
const toolStream = tools.chat.completions.stream({ ...toolAsk, tools: [strictWeather] });
toolStream.on('tool_calls.function.arguments.delta', (e) => argumentDeltas.push(e.arguments_delta));
toolStream.on('tool_calls.function.arguments.done', (e) => argumentsDone.push(e));
const streamedCall = await toolStream.finalChatCompletion();
assert.equal(streamedCall.choices[0].finish_reason, 'tool_calls');
assert.equal(streamedCall.choices[0].message.content, called.choices[0].message.content);
assert.equal(streamedCall.choices[0].message.tool_calls.length, 1);
const streamedToolCall = streamedCall.choices[0].message.tool_calls[0];
assertWeatherCall(streamedToolCall);
assert.equal(streamedToolCall.function.name, toolCall.function.name);
assert.equal(streamedToolCall.function.arguments, toolCall.function.arguments);
assert.deepEqual(streamedToolCall.function.parsed_arguments, JSON.parse(toolCall.function.arguments));
assert.ok(argumentDeltas.length >= 1, 'arguments deltas');
assert.equal(argumentDeltas.join(''), toolCall.function.arguments);
assert.equal(argumentsDone.length, 1);
assert.equal(argumentsDone[0].name, 'get_weather');
assert.equal(argumentsDone[0].arguments, toolCall.function.arguments);
assert.deepEqual(argumentsDone[0].parsed_arguments, JSON.parse(toolCall.function.arguments));
seen.toolStream = { argumentDeltas: argumentDeltas.length, argumentsDone: argumentsDone.length };
const parsedCall = await tools.chat.completions.parse({ ...toolAsk, tools: [strictWeather] });
const parsedToolCall = parsedCall.choices[0].message.tool_calls[0];
assert.equal(parsedToolCall.function.arguments, toolCall.function.arguments);
assert.deepEqual(parsedToolCall.function.parsed_arguments, JSON.parse(toolCall.function.arguments));
const Weather = z.object({ location: z.string().max(24), unit: z.enum(['celsius', 'fahrenheit']) });
const zodWeather = zodFunction({ name: 'get_weather', description: 'Current weather at a place', parameters: Weather });
const zodCall = await tools.chat.completions.parse({ ...toolAsk, tools: [zodWeather] });
const zodToolCall = zodCall.choices[0].message.tool_calls[0];
assertWeatherCall(zodToolCall);
assert.deepEqual(zodToolCall.function.parsed_arguments, Weather.parse(JSON.parse(zodToolCall.function.arguments)));
seen.zodToolCall = { tool: zodWeather, arguments: zodToolCall.function.arguments };

// runTools: the client calls the function with the parsed arguments and sends its result back as a
// tool message after the assistant's tool_calls. A named tool_choice ends the loop at the first call;
// "required" calls every round, so maxChatCompletions ends it, the second request carrying the
// conversation so far (one call a round: with parallel_tool_calls "required" allows several, and the
// tiny model writes calls until max_tokens)
const weatherCalls = [];
const runnable = {
  type: 'function',
  function: {
    name: 'get_weather', description: 'Current weather at a place', parameters: weatherParams, parse: JSON.parse,
    function: async (args) => { weatherCalls.push(args); return { temperature: 21, unit: args.unit }; },
  },
};
const forcedRun = tools.chat.completions.runTools({ ...toolAsk, tools: [runnable] });
assert.deepEqual(await forcedRun.finalFunctionToolCallResult(), JSON.stringify({ temperature: 21, unit: weatherCalls[0].unit }));
assert.equal(forcedRun.allChatCompletions().length, 1);
assert.deepEqual(forcedRun.messages.map((m) => m.role), ['user', 'assistant', 'tool']);
assert.deepEqual(weatherCalls, [JSON.parse(forcedRun.messages[1].tool_calls[0].function.arguments)]);
// a zod tool with its function: called with the arguments zod parsed
const zodRunCalls = [];
const zodRunnable = zodFunction({
  name: 'get_weather', description: 'Current weather at a place', parameters: Weather,
  function: (args) => { zodRunCalls.push(args); return 'sunny'; },
});
const zodRun = tools.chat.completions.runTools({ ...toolAsk, tools: [zodRunnable] });
await zodRun.done();
assert.deepEqual(zodRunCalls, [Weather.parse(JSON.parse(zodRun.messages[1].tool_calls[0].function.arguments))]);
// the conversation it built (user, the assistant's call, the tool's result) goes back for an answer
const runMessages = forcedRun.messages;
assert.equal(runMessages[2].tool_call_id, runMessages[1].tool_calls[0].id);
const afterTool = await tools.chat.completions.create({ ...toolAsk, messages: runMessages, tool_choice: 'none', max_tokens: 24 });
assert.ok(afterTool.choices[0].message.content.length > 0);
seen.toolRoundTrip = { messages: runMessages, answer: afterTool.choices[0].message.content };
for (const stream of [false, true]) {
  weatherCalls.length = 0;
  const run = tools.chat.completions.runTools({ ...toolAsk, tools: [runnable], tool_choice: 'required', parallel_tool_calls: false, stream }, { maxChatCompletions: 2 });
  await run.done();
  assert.equal(run.allChatCompletions().length, 2, 'both requests answered');
  for (const c of run.allChatCompletions()) {
    assert.equal(c.choices[0].finish_reason, 'tool_calls');
    assertWeatherCall(c.choices[0].message.tool_calls[0]);
  }
  assert.deepEqual(run.messages.map((m) => m.role), ['user', 'assistant', 'tool', 'assistant', 'tool']);
  assert.deepEqual(weatherCalls, [1, 3].map((i) => JSON.parse(run.messages[i].tool_calls[0].function.arguments)));
  assert.equal(run.messages[4].tool_call_id, run.messages[3].tool_calls[0].id);
  seen[stream ? 'runToolsStreamed' : 'runTools'] = weatherCalls.slice();
}

// the Responses API with a forced function tool; the server keeps nothing, so the follow-up's input is
// the whole conversation: the question, the model's function_call item as it came, and its output
const responsesWeather = { type: 'function', name: 'get_weather', description: 'Current weather at a place', parameters: weatherParams, strict: true };
const fnAsk = {
  model, input: 'What is the weather in Paris?', max_output_tokens: 250, temperature: 0,
  tools: [responsesWeather], tool_choice: { type: 'function', name: 'get_weather' },
};
const fnResponse = await tools.responses.create(fnAsk);
assert.equal(fnResponse.status, 'completed');
const fnCall = fnResponse.output.find((o) => o.type === 'function_call');
assert.ok(fnCall, JSON.stringify(fnResponse.output));
assert.equal(fnCall.name, 'get_weather');
assert.deepEqual(Object.keys(JSON.parse(fnCall.arguments)).sort(), ['location', 'unit']);
seen.responsesCall = { name: fnCall.name, arguments: fnCall.arguments };
const fnOutput = { type: 'function_call_output', call_id: fnCall.call_id, output: JSON.stringify({ temperature: 21, unit: 'celsius' }) };
const followUpInput = [{ role: 'user', content: fnAsk.input }, ...fnResponse.output, fnOutput];
const followUp = await tools.responses.create({ ...fnAsk, input: followUpInput, tool_choice: 'none', max_output_tokens: 24 });
assert.ok(['completed', 'incomplete'].includes(followUp.status), followUp.status);
assert.equal(followUp.output[0].type, 'message');
assert.ok(followUp.output_text.length > 0);
seen.responsesFollowUp = { input: followUpInput, answer: followUp.output_text };
// the count of the follow-up's input (POST /v1/responses/input_tokens) is what its usage says
const inputCount = await tools.responses.inputTokens.count({ model, input: followUpInput, tools: [responsesWeather], tool_choice: 'none' });
assert.equal(inputCount.object, 'response.input_tokens');
assert.equal(inputCount.input_tokens, followUp.usage.input_tokens);
seen.responsesFollowUpTokens = inputCount.input_tokens;
const fnArgumentDeltas = [];
const fnStream = tools.responses.stream(fnAsk);
fnStream.on('response.function_call_arguments.delta', (e) => fnArgumentDeltas.push(e.delta));
const fnStreamed = await fnStream.finalResponse();
const fnStreamedCall = fnStreamed.output.find((o) => o.type === 'function_call');
assert.equal(fnArgumentDeltas.join(''), fnCall.arguments);
assert.equal(fnStreamedCall.arguments, fnCall.arguments);
assert.deepEqual(fnStreamedCall.parsed_arguments, JSON.parse(fnCall.arguments));
const zodResponsesWeather = zodResponsesFunction({ name: 'get_weather', description: 'Current weather at a place', parameters: Weather });
const fnParsed = await tools.responses.parse({ ...fnAsk, tools: [zodResponsesWeather] });
const fnParsedCall = fnParsed.output.find((o) => o.type === 'function_call');
assert.deepEqual(fnParsedCall.parsed_arguments, Weather.parse(JSON.parse(fnParsedCall.arguments)));
// embeddings, one and many (floats and base64, which the client decodes)
const one = await client.embeddings.create({ model, input: 'a dog', encoding_format: 'float' });
const many = await client.embeddings.create({ model, input: ['a dog', 'a cat'] });
assert.equal(many.data.length, 2);
assert.deepEqual(many.data.map((d) => d.index), [0, 1]);
const norm = Math.hypot(...many.data[0].embedding);
assert.ok(Math.abs(norm - 1) < 1e-3, 'L2-normalised, got ' + norm);
assert.equal(one.data[0].embedding.length, many.data[0].embedding.length);
for (let i = 0; i < one.data[0].embedding.length; i++) {
  assert.ok(Math.abs(one.data[0].embedding[i] - many.data[0].embedding[i]) < 1e-5);
}
seen.embeddingSize = one.data[0].embedding.length;

// errors, typed
const errors = {};
async function expectError(name, type, call) {
  try {
    await call();
  } catch (e) {
    assert.ok(e instanceof type, name + ': ' + e);
    errors[name] = { status: e.status, code: e.code, param: e.param, message: e.message };
    return;
  }
  assert.fail(name + ': no error');
}
await expectError('negative max_tokens', OpenAI.BadRequestError, () => client.chat.completions.create({ ...chat, max_tokens: -1 }));
await expectError('unknown model', OpenAI.NotFoundError, () => client.chat.completions.create({ ...chat, model: 'nope' }));
await expectError('n above limits.max-choices', OpenAI.BadRequestError, () => client.chat.completions.create({ ...chat, n: 64 }));
await expectError('previous_response_id', OpenAI.BadRequestError, () => client.responses.create({ ...ask, previous_response_id: 'resp_1' }));
await expectError('unknown model id', OpenAI.NotFoundError, () => client.models.retrieve('nope'));
seen.errors = errors;

// Anthropic's Messages API through Anthropic's own SDK (its base URL is the server's root)
const claude = new Anthropic({ baseURL: baseURL.replace(/\/v1\/?$/, ''), apiKey: 'unused', maxRetries: 0, timeout: 60_000 });
// the SDK's model list (its auto-pager stops after the one page)
const claudeModels = [];
for await (const m of claude.models.list()) {
  assert.equal(m.type, 'model');
  assert.ok(m.display_name && !Number.isNaN(Date.parse(m.created_at)));
  claudeModels.push(m.id);
}
assert.deepEqual(claudeModels, [model]);
seen.anthropicModels = claudeModels;
const ask2 = { model, max_tokens: 24, temperature: 0, system: 'You tell short stories.', messages: [{ role: 'user', content: 'Tell me about a dog.' }] };
const msg = await claude.messages.create(ask2);
assert.equal(msg.type, 'message');
assert.ok(['end_turn', 'max_tokens'].includes(msg.stop_reason), msg.stop_reason);
seen.messages = msg.content.filter((b) => b.type === 'text').map((b) => b.text).join('');
let messageDeltas = '';
const messageStream = claude.messages.stream(ask2);
messageStream.on('text', (t) => { messageDeltas += t; });
const finalMessage = await messageStream.finalMessage();
assert.equal(messageDeltas, seen.messages);
assert.equal(finalMessage.content[0].text, seen.messages);
assert.equal(finalMessage.stop_reason, msg.stop_reason);
assert.equal(finalMessage.usage.output_tokens, msg.usage.output_tokens);
const counted = await claude.messages.countTokens({ model, system: ask2.system, messages: ask2.messages });
assert.equal(counted.input_tokens, msg.usage.input_tokens + (msg.usage.cache_read_input_tokens ?? 0));
seen.messageTokens = counted.input_tokens;
try {
  await claude.messages.create({ ...ask2, model: 'nope' });
  assert.fail('unknown model: no error');
} catch (e) {
  assert.ok(e instanceof Anthropic.NotFoundError, 'unknown model: ' + e);
  seen.anthropicError = { status: e.status, type: e.error?.error?.type, message: e.error?.error?.message };
}

console.log(JSON.stringify(seen));
