"""``paper vgg|googlenet|resnet [--csv]``: a paper's table regenerated from the models built in code."""
from __future__ import annotations

from explorer.commands.common import print_table


def register(subparsers) -> None:
    parser = subparsers.add_parser("paper", help="regenerate a paper's table: VGG (Tables 1-2), GoogLeNet "
                                                 "(Table 1) or ResNet (Table 1)")
    parser.add_argument("paper", choices=["vgg", "googlenet", "resnet"])
    parser.add_argument("--csv", action="store_true", help="write CSV to stdout")
    parser.set_defaults(func=run)


def run(args) -> int:
    from explorer.history import papers
    if args.paper == "vgg":
        tables = [papers.vgg_config_table(), papers.vgg_summary_table()]
        notes = ["vgg_params"]
    elif args.paper == "googlenet":
        table = papers.googlenet_table()
        table["torchvision differences"] = table["torchvision differences"].map(papers.explain_differences)
        tables = [table]
        notes = ["googlenet_stem", "googlenet_params", "googlenet_aux"]
    else:
        tables = [papers.resnet_table(), papers.resnet_flops_table()]
        notes = ["resnet_v15"]
    for i, table in enumerate(tables):
        if i:
            print()  # a blank line between the tables (in CSV too: two CSV blocks)
        print_table(table, args.csv)
    if not args.csv:
        print()
        for code in notes:
            print("- " + papers.NOTES_TEXT[code])
    return 0
