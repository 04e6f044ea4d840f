"""Subgoal commands: `protege data subgoals` (bot demos -> subgoal phrases), `protege eval subgoals`
(a hierarchical agent on held-out seeds) and `protege subgoals show` (an episode's subgoals)."""

from pathlib import Path

import typer

from protege.core.cli import app, console, data_app, eval_app, print_summary

subgoals_app = typer.Typer(help="Language subgoals of BabyAI episodes.", no_args_is_help=True)
app.add_typer(subgoals_app, name="subgoals")


@data_app.command("subgoals")
def data_subgoals(demos: Path = typer.Option(..., help="folder written by `protege data demos`"),
                  out: Path = typer.Option(..., help="output folder (subgoals.npz + manifest)"),
                  seed: int = typer.Option(0, help="seeds the choice of paraphrase templates")) -> None:
    """Turn the bot's per-step subgoals into English phrases with subgoal boundaries."""
    from protege.worlds.babyai.subgoals import write_subgoal_data
    print_summary(f"subgoal phrases in {out}", [write_subgoal_data(demos, out, seed)])


@eval_app.command("subgoals")
def eval_subgoals(runs: list[Path] = typer.Argument(..., help="subgoals run directories or checkpoints"),
                  level: str = typer.Option(None, help="BabyAI level (default: the run's level)"),
                  episodes: int = typer.Option(200, help="held-out episodes (seeds from 10^9)"),
                  agreement: int = typer.Option(100, help="held-out bot episodes for phrase agreement (0 skips)"),
                  bot_chooser: bool = typer.Option(False, help="diagnostic: the bot says the phrases, "
                                                   "the agent's low level acts"),
                  bot_at_done: bool = typer.Option(False, help="diagnostic: the bot's phrase, taken "
                                                   "only when the agent's done head fires (memory kept "
                                                   "on the same phrase under --replan done_keep)"),
                  chooser_at_bot: bool = typer.Option(False, help="diagnostic: the agent's chooser names "
                                                      "the phrase, at the steps where the bot's changes"),
                  sample_chooser: bool = typer.Option(False, help="draw the chooser's phrases (seeded) "
                                                      "instead of its argmax; the low level stays greedy"),
                  switch_cost: float = typer.Option(0.0, help="under done or done_keep: a bonus to the "
                                                    "pursued phrase's logit when the done head fires "
                                                    "(a deliberation cost on switching)"),
                  replan: str = typer.Option(None, help="when the phrase changes: done (the done head "
                                             "fires), done_other (the same, never re-choosing the "
                                             "phrase just reached), done_keep (as done, the low level's "
                                             "memory kept when the same phrase is chosen again) or "
                                             "every_step (the chooser's phrase "
                                             "at every step); default: the run's")) -> None:
    """Success with 95% intervals, and agreement of the chosen phrases with the bot's."""
    from protege.core.errors import UserError
    from protege.systems.subgoals.evaluate import (
        EVAL_SEED_START,
        evaluate_agent,
        load_agent,
        phrase_agreement,
        play_with_bot_chooser,
        save_beside_run,
        summarise,
    )
    if episodes <= 0:
        raise UserError(f"--episodes must be positive, got {episodes}")
    diagnostics = bot_chooser + bot_at_done + chooser_at_bot
    if diagnostics > 1:
        raise UserError("--bot-chooser, --bot-at-done and --chooser-at-bot are three diagnostics; give one")
    if diagnostics and (switch_cost or sample_chooser):  # the diagnostics act greedily, with no cost
        raise UserError("--switch-cost and --sample-chooser apply to the agent's own play, not to "
                        "--bot-chooser, --bot-at-done or --chooser-at-bot")
    rows = []
    for path in runs:
        agent, config = load_agent(path)
        if replan is not None:
            agent.replan = replan_option(replan)
        if switch_cost:
            if switch_cost < 0 or agent.replan not in ("done", "done_keep"):
                raise UserError(f"--switch-cost: a bonus >= 0 under --replan done or done_keep, got "
                                f"{switch_cost:g} under {agent.replan}")
            agent.switch_cost = switch_cost
        lvl = level or config["level"]
        if bot_chooser or bot_at_done or chooser_at_bot:
            seeds = list(range(EVAL_SEED_START, EVAL_SEED_START + episodes))
            r = summarise(lvl, play_with_bot_chooser(agent, lvl, seeds, at_done=bot_at_done,
                                                     chooser_at_bot=chooser_at_bot))
            if bot_at_done:
                rule = "bot-at-done" + ("-keep" if agent.replan == "done_keep" else "")
            else:
                rule = f"chooser-at-bot-{agent.replan}" if chooser_at_bot else "bot"
        else:
            r = evaluate_agent(agent, lvl, episodes, sample_chooser=sample_chooser)
            rule = (agent.replan + (f"-switch{switch_cost:g}" if switch_cost else "")
                    + ("-sampled" if sample_chooser else ""))
        save_beside_run(path, f"subgoals-{lvl}-{episodes}ep-{rule}-from{EVAL_SEED_START}",
                        {"level": lvl, "episodes": episodes, "replan": rule, "seed_start": EVAL_SEED_START}, r)
        row = {"run": Path(path).name, "level": lvl, "replan": rule,
               "episodes": r["episodes"],
               "success (95% Wilson)": f"{r['success']:.3f} [{r['success_lo']:.3f}, {r['success_hi']:.3f}]",
               "length": f"{r['length']:.1f}", "subgoals/episode": f"{r['subgoals_per_episode']:.1f}"}
        if agreement:
            a = phrase_agreement(agent, lvl, agreement)
            row["agreement at boundaries (95%)"] = (f"{a['boundaries']:.3f} [{a['boundaries_lo']:.3f}, "
                                                    f"{a['boundaries_hi']:.3f}]")
            row["agreement all steps"] = f"{a['steps']:.3f}"
        rows.append(row)
    title = ("low level under the bot's phrases" if bot_chooser or bot_at_done
             else "chooser at the bot's timing" if chooser_at_bot else "hierarchical agent")
    print_summary(f"{title}, held-out evaluation", rows)


def replan_option(rule: str) -> str:
    """--replan's value, or a one-line error naming the choices."""
    from protege.core.errors import UserError
    from protege.nn.subgoal_agent import check_replan
    try:
        return check_replan(rule)
    except ValueError as e:
        raise UserError(f"--replan: {e}") from None


@subgoals_app.command("show")
def show(source: Path = typer.Argument(..., help="a subgoals run (plays an episode) or a subgoal dataset"),
         episode: int = typer.Option(0, help="dataset: episode index; run: held-out seed offset"),
         level: str = typer.Option(None, help="run: BabyAI level (default: the run's level)")) -> None:
    """Print an episode's subgoal phrases with the steps where each starts."""
    from protege.systems.subgoals.show import show_episode
    for line in show_episode(source, episode, level):
        console.print(line, markup=False, highlight=False)
