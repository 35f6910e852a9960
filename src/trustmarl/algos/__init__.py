"""Algorithm registry. Each algorithm is a declaration of its seam choices (see :mod:`.base`)."""
from trustmarl.algos.a2po import A2PO
from trustmarl.algos.b2mapo import B2MAPO
from trustmarl.algos.base import Algorithm
from trustmarl.algos.happo import HAPPO
from trustmarl.algos.ippo import IPPO
from trustmarl.algos.jrppo import JRPPO
from trustmarl.algos.lola_dqn import LOLA_DQN
from trustmarl.algos.ma_ppo import MA_PPO
from trustmarl.algos.maac import MAAC
from trustmarl.algos.maddpg import MADDPG
from trustmarl.algos.mamd import MAMD
from trustmarl.algos.mamt import MAMT
from trustmarl.algos.mappo import MAPPO

ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (IPPO, MAPPO, JRPPO, HAPPO, A2PO, B2MAPO,
                                                            MADDPG, MAAC, MAMD, MAMT, LOLA_DQN, MA_PPO)}

__all__ = ["Algorithm", "ALGORITHMS"]
