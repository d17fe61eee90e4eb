-- wrk script: a small non-streaming OpenAI chat completion request.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"model":"bench-model","messages":['
  .. '{"role":"system","content":"You are a terse assistant."},'
  .. '{"role":"user","content":"Say hello in a few words."}],'
  .. '"max_tokens":32}'

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_summary.lua")
