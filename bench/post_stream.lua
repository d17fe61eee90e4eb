-- wrk script: the same chat request, streamed (SSE) with usage in the last chunk.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer bench-key"
wrk.body = '{"model":"bench-stream-model","messages":['
  .. '{"role":"system","content":"You are a terse assistant."},'
  .. '{"role":"user","content":"Say hello in a few words."}],'
  .. '"max_tokens":32,"stream":true,"stream_options":{"include_usage":true}}'

dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "wrk_summary.lua")
