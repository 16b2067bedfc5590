#!/usr/bin/env escript
%% core_ops.escript: the four micro-operations of erlmcp's core-operations
%% benchmark (registry, queue, pool, session), done as that benchmark does
%% them, but every operation timed for real in nanoseconds. erlmcpbench
%% (main.go beside this file) runs it to compare the BEAM and Go on one
%% machine.
%%
%%   escript core_ops.escript OPS WORKERS RUNS
-mode(compile).

main([Ops0, Workers0, Runs0]) ->
    Ops = list_to_integer(Ops0),
    Workers = list_to_integer(Workers0),
    Runs = list_to_integer(Runs0),
    io:format("Erlang/OTP ~s (~p schedulers)~n", [erlang:system_info(otp_release), erlang:system_info(schedulers_online)]),
    io:format("  ~-10s ~14s ~10s ~10s~n", ["component", "ops/s", "p50 us", "p99 us"]),
    Comps = [{registry, fun registry/2}, {queue, fun queue/2}, {pool, fun pool/2}, {session, fun session/2}],
    Res = [begin
               Rs = [run(F, Ops, Workers) || _ <- lists:seq(1, Runs)],
               M = median(Rs),
               print(Name, M),
               M
           end || {Name, F} <- Comps],
    All = lists:append([L || {_, L} <- Res]),
    Wall = lists:sum([length(L) / R || {R, L} <- Res]),
    print(overall, {length(All) / Wall, All}).

now_ns() -> erlang:monotonic_time(nanosecond).

run(F, Ops, Workers) ->
    erlang:garbage_collect(),
    T0 = now_ns(),
    Lats = F(Ops, Workers),
    Wall = (now_ns() - T0) / 1.0e9,
    {length(Lats) / Wall, Lats}.

median(Rs) ->
    Sorted = lists:sort(fun({A, _}, {B, _}) -> A =< B end, Rs),
    lists:nth(length(Sorted) div 2 + 1, Sorted).

pct(Sorted, N, P) -> lists:nth(max(1, min(N, round(N * P))), Sorted).

print(Name, {OpsPerS, Lats}) ->
    S = lists:sort(Lats),
    N = length(S),
    io:format("  ~-10s ~14w ~10.3f ~10.3f~n", [atom_to_list(Name), round(OpsPerS), pct(S, N, 0.50) / 1000, pct(S, N, 0.99) / 1000]).

%% Collects one latency list from each of Workers processes running Fun(W).
workers(Workers, Fun) ->
    Parent = self(),
    Pids = [spawn_link(fun() -> Parent ! {done, self(), Fun(W)} end) || W <- lists:seq(1, Workers)],
    lists:append([receive {done, P, L} -> L end || P <- Pids]).

%% registry: put, get and erase in the worker's process dictionary.
registry(Ops, Workers) ->
    Per = Ops div Workers,
    workers(Workers, fun(W) ->
        [begin
             Key = {registry, W, rand:uniform(1000000)},
             Value = {test_data, erlang:system_time()},
             S = now_ns(),
             erlang:put(Key, Value),
             _ = erlang:get(Key),
             erlang:erase(Key),
             now_ns() - S
         end || _ <- lists:seq(1, Per)]
    end).

%% queue: one in and one out on a local queue, in one process.
queue(Ops, _Workers) ->
    {Lats, _} = lists:foldl(fun(_, {Acc, Q}) ->
        S = now_ns(),
        Q1 = queue:in({test_item, erlang:system_time()}, Q),
        Q2 = case queue:out(Q1) of
                 {{value, _}, Qo} -> Qo;
                 {empty, Qe} -> Qe
             end,
        {[now_ns() - S | Acc], Q2}
    end, {[], queue:new()}, lists:seq(1, Ops)),
    Lats.

%% pool: checkout, sleep(0), checkin on a 10-slot ETS table, in one process.
pool(Ops, _Workers) ->
    T = ets:new(bench_pool, [set, public]),
    [ets:insert(T, {Id, available}) || Id <- lists:seq(1, 10)],
    Lats = [begin
                S = now_ns(),
                Id = case ets:match(T, {'$1', available}, 1) of
                         {[[I]], _} -> ets:insert(T, {I, busy}), I;
                         _ -> 1
                     end,
                timer:sleep(0),
                ets:insert(T, {Id, available}),
                now_ns() - S
            end || _ <- lists:seq(1, Ops)],
    ets:delete(T),
    Lats.

%% session: insert and lookup on a shared ETS table of 1,000 keys.
session(Ops, Workers) ->
    T = ets:new(bench_session, [set, public, {write_concurrency, true}, {read_concurrency, true}]),
    Per = Ops div Workers,
    Lats = workers(Workers, fun(W) ->
        [begin
             Key = {session, rand:uniform(1000)},
             Value = #{worker_id => W, timestamp => erlang:system_time()},
             S = now_ns(),
             ets:insert(T, {Key, Value}),
             _ = ets:lookup(T, Key),
             now_ns() - S
         end || _ <- lists:seq(1, Per)]
    end),
    ets:delete(T),
    Lats.
